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

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of loss.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Loss.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<SoftmaxCrossEntropyArgs> SoftmaxCrossEntropy = new("loss.cu", "softmax_cross_entropy");
        public static readonly KernelSpec<AddRowStatsArgs> AddRowStats = new("loss.cu", "add_row_stats");
        public static readonly KernelSpec<SoftmaxArgs> Softmax = new("loss.cu", "softmax");
    }
}

internal readonly record struct SoftmaxCrossEntropyArgs(DevicePtr z, DevicePtr labels, DevicePtr dz, DevicePtr row_loss, DevicePtr row_correct, int n, int k);
internal readonly record struct AddRowStatsArgs(DevicePtr row_loss, DevicePtr row_correct, int n, DevicePtr stats);
internal readonly record struct SoftmaxArgs(DevicePtr z, DevicePtr p, int n, int k);
