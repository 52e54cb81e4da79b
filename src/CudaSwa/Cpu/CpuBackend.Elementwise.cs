using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void ReluForwardCore(Tensor x, Tensor y) => CpuPointwise.ReluForward(x, y);
    /// <inheritdoc/>
    private protected override void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate) => CpuPointwise.ReluBackward(y, dy, dx, accumulate);
    /// <inheritdoc/>
    private protected override void AddCore(Tensor a, Tensor b, Tensor y) => CpuPointwise.Add(a, b, y);
    /// <inheritdoc/>
    private protected override void PointOnLineCore(Tensor origin, Tensor direction, float s, Tensor y) => CpuPointwise.PointOnLine(origin, direction, s, y);
    /// <inheritdoc/>
    private protected override void AddReluCore(Tensor a, Tensor b, Tensor y) => CpuPointwise.AddRelu(a, b, y);
    /// <inheritdoc/>
    private protected override void AddReluBackwardCore(Tensor y, Tensor dy, Tensor da, bool accumulateA, Tensor db, bool accumulateB) =>
        CpuPointwise.AddReluBackward(y, dy, da, accumulateA, db, accumulateB);
    /// <inheritdoc/>
    private protected override void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate) => CpuPointwise.Accumulate(source, destination, accumulate);

    /// <inheritdoc/>
    private protected override void DropoutForwardCore(Tensor x, Tensor y, float p, ulong seed, ulong stream) => CpuPointwise.DropoutForward(x, y, p, seed, stream);
    /// <inheritdoc/>
    private protected override void DropoutBackwardCore(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate) => CpuPointwise.DropoutBackward(dy, dx, p, seed, stream, accumulate);
}
