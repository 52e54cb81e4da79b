using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- loss

    /// <inheritdoc/>
    private protected override void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats)
    {
        Ctx();
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        if (_rowStats is null || _rowStats.Length < 2L * n)
        {
            _rowStats?.Dispose();
            _rowStats = AllocateCore(2L * Math.Max(n, 256), DType.Float32);
        }
        var rowLoss = ((CudaBuffer)_rowStats).Address;
        var rowCorrect = rowLoss.Plus(4L * n);
        Launch(Kernels.SoftmaxCrossEntropy, GridExact((long)n * 32),
            new(P(logits), P(labels), dLogits.IsNull ? DevicePtr.Null : P(dLogits), rowLoss, rowCorrect, n, k));
        Launch(Kernels.AddRowStats, 1, new(rowLoss, rowCorrect, n, P(stats)));
    }

    /// <inheritdoc/>
    private protected override void SoftmaxCore(Tensor logits, Tensor probabilities)
    {
        Ctx();
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        Launch(Kernels.Softmax, GridExact((long)n * 32), new(P(logits), P(probabilities), n, k));
    }
}
