using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats) => CpuLoss.SoftmaxCrossEntropy(logits, labels, dLogits, stats);
    /// <inheritdoc/>
    private protected override void SoftmaxCore(Tensor logits, Tensor probabilities) => CpuLoss.Softmax(logits, probabilities);
}
