using System.Runtime.InteropServices;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>
/// The CPU backend: the readable reference every CUDA op is tested against, and the fallback
/// when no GPU is present. Multi-threaded over the cores (CpuParallel), SIMD through
/// TensorPrimitives, Vector256/Vector512 and the blocked GEMM.
/// </summary>
public sealed unsafe class CpuBackend : Backend
{
    private readonly CpuConvolution _convolution = new();

    /// <inheritdoc/>
    public override string Name => "cpu";

    /// <inheritdoc/>
    public override string Description =>
        $"CPU: {CpuParallel.Workers} threads, {RuntimeInformation.ProcessArchitecture}, GEMM kernel {Gemm.KernelName}";

    /// <inheritdoc/>
    public override bool MemoryIsHostVisible => true;

    /// <inheritdoc/>
    protected override Span<float> HostSpanCore(Tensor t) => CpuTensor.Span(t);

    /// <inheritdoc/>
    protected override DeviceBuffer AllocateCore(long length, DType dtype) => new CpuBuffer(this, length, dtype);

    /// <inheritdoc/>
    protected override void UploadCore(ReadOnlySpan<byte> source, Tensor destination) =>
        source.CopyTo(new Span<byte>((byte*)((CpuBuffer)destination.Buffer).Pointer + destination.Offset * destination.DType.SizeInBytes(), source.Length));

    /// <inheritdoc/>
    protected override void DownloadCore(Tensor source, Span<byte> destination) =>
        new ReadOnlySpan<byte>((byte*)((CpuBuffer)source.Buffer).Pointer + source.Offset * source.DType.SizeInBytes(), destination.Length).CopyTo(destination);

    /// <inheritdoc/>
    protected override void FillCore(Tensor t, float value) => CpuPointwise.Fill(t, value);
    /// <inheritdoc/>
    protected override void CopyCore(Tensor source, Tensor destination) => CpuPointwise.CopyBytes(source, destination);

    /// <inheritdoc/>
    protected override void PrepareConvolutionCore(ConvGeometry geometry) => _convolution.Prepare(geometry);
    /// <inheritdoc/>
    protected override void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g) => _convolution.Forward(x, w, y, g);
    /// <inheritdoc/>
    protected override void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate) => _convolution.BackwardData(dy, w, dx, g, accumulate);
    /// <inheritdoc/>
    protected override void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g) => _convolution.BackwardFilter(x, dy, dw, g);
    /// <inheritdoc/>
    protected override void AddChannelBiasCore(Tensor y, Tensor bias) => CpuPointwise.AddChannelBias(y, bias);
    /// <inheritdoc/>
    protected override void ChannelBiasBackwardCore(Tensor dy, Tensor dBias) => CpuPointwise.ChannelBiasBackward(dy, dBias);

    /// <inheritdoc/>
    protected override void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd) =>
        CpuBatchNorm.ForwardTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);

    /// <inheritdoc/>
    protected override void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon) =>
        CpuBatchNorm.ForwardInference(x, y, gamma, beta, runningMean, runningVar, epsilon);

    /// <inheritdoc/>
    protected override void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx, Tensor dGamma, Tensor dBeta,
        double epsilon, bool accumulate) =>
        CpuBatchNorm.Backward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, accumulate);

    /// <inheritdoc/>
    protected override void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon, long batchCount, long previousCount, Tensor accMean, Tensor accM2) =>
        CpuBatchNorm.MergeStatistics(saveMean, saveInvStd, epsilon, batchCount, previousCount, accMean, accM2);

    /// <inheritdoc/>
    protected override void ReluForwardCore(Tensor x, Tensor y) => CpuPointwise.ReluForward(x, y);
    /// <inheritdoc/>
    protected override void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate) => CpuPointwise.ReluBackward(y, dy, dx, accumulate);
    /// <inheritdoc/>
    protected override void AddCore(Tensor a, Tensor b, Tensor y) => CpuPointwise.Add(a, b, y);
    /// <inheritdoc/>
    protected override void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate) => CpuPointwise.Accumulate(source, destination, accumulate);
    /// <inheritdoc/>
    protected override void GlobalAveragePoolForwardCore(Tensor x, Tensor y) => CpuPooling.GlobalAverageForward(x, y);
    /// <inheritdoc/>
    protected override void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate) => CpuPooling.GlobalAverageBackward(dy, dx, accumulate);
    /// <inheritdoc/>
    protected override void MaxPoolForwardCore(Tensor x, Tensor y) => CpuPooling.MaxForward(x, y);
    /// <inheritdoc/>
    protected override void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate) => CpuPooling.MaxBackward(x, dy, dx, accumulate);
    /// <inheritdoc/>
    protected override void DropoutForwardCore(Tensor x, Tensor y, float p, ulong seed, ulong stream) => CpuPointwise.DropoutForward(x, y, p, seed, stream);
    /// <inheritdoc/>
    protected override void DropoutBackwardCore(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate) => CpuPointwise.DropoutBackward(dy, dx, p, seed, stream, accumulate);

    /// <inheritdoc/>
    protected override void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        int n = x.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float* ys = CpuTensor.Ptr(y), bs = CpuTensor.Ptr(b);
        Gemm.MultiplyParallel(false, true, n, outF, inF, 1f, CpuTensor.Ptr(x), inF, CpuTensor.Ptr(w), inF, 0f, ys, outF);
        CpuPointwise.AddRowBias(ys, bs, n, outF);
    }

    /// <inheritdoc/>
    protected override void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        int n = dy.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        Gemm.MultiplyParallel(false, false, n, inF, outF, 1f, CpuTensor.Ptr(dy), outF, CpuTensor.Ptr(w), inF, accumulate ? 1f : 0f, CpuTensor.Ptr(dx), inF);
    }

    /// <inheritdoc/>
    protected override void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        int n = x.Shape.N, inF = dw.Shape.C, outF = dw.Shape.N;
        float* dys = CpuTensor.Ptr(dy), dbs = CpuTensor.Ptr(db);
        Gemm.MultiplyParallel(true, false, outF, inF, n, 1f, dys, outF, CpuTensor.Ptr(x), inF, 1f, CpuTensor.Ptr(dw), inF);
        CpuPointwise.ColumnSumAccumulate(dys, dbs, n, outF);
    }

    /// <inheritdoc/>
    protected override void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats) => CpuLoss.SoftmaxCrossEntropy(logits, labels, dLogits, stats);
    /// <inheritdoc/>
    protected override void SoftmaxCore(Tensor logits, Tensor probabilities) => CpuLoss.Softmax(logits, probabilities);
    /// <inheritdoc/>
    protected override void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper) => CpuOptim.SgdStep(weights, gradients, velocity, hyper);
    /// <inheritdoc/>
    protected override AveragePlan PrepareAverageCore(AveragePair[] pairs) => new CpuAveragePlan(this, pairs);
    /// <inheritdoc/>
    protected override void AverageUpdateCore(AveragePlan plan, float alpha) => CpuOptim.AverageUpdate((CpuAveragePlan)plan, alpha);
    /// <inheritdoc/>
    protected override void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels) =>
        CpuAugment.Batch(images, sourceLabels, indices, spec, epoch, x, labels);

    /// <inheritdoc/>
    public override void Dispose() { }
}
