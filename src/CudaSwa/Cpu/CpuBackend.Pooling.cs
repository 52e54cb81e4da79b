using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void GlobalAveragePoolForwardCore(Tensor x, Tensor y) => CpuPooling.GlobalAverageForward(x, y);
    /// <inheritdoc/>
    private protected override void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate) => CpuPooling.GlobalAverageBackward(dy, dx, accumulate);
    /// <inheritdoc/>
    private protected override void MaxPoolForwardCore(Tensor x, Tensor y) => CpuPooling.MaxForward(x, y);
    /// <inheritdoc/>
    private protected override void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate) => CpuPooling.MaxBackward(x, dy, dx, accumulate);
}
