using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- elementwise and dropout (kernels)

    /// <inheritdoc/>
    private protected override void ReluForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        Launch(Kernels.ReluForward, Grid(x.Length), new(P(x), P(y), x.Length));
    }

    /// <inheritdoc/>
    private protected override void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        Launch(Kernels.ReluBackward, Grid(y.Length), new(P(y), P(dy), P(dx), y.Length, accumulate));
    }

    /// <inheritdoc/>
    private protected override void PointOnLineCore(Tensor origin, Tensor direction, float s, Tensor y)
    {
        Ctx();
        Launch(Kernels.PointOnLine, Grid(origin.Length), new(P(origin), P(direction), s, P(y), origin.Length));
    }

    /// <inheritdoc/>
    private protected override void AddCore(Tensor a, Tensor b, Tensor y)
    {
        Ctx();
        Launch(Kernels.Add, Grid(a.Length), new(P(a), P(b), P(y), a.Length));
    }

    /// <inheritdoc/>
    private protected override void AddReluCore(Tensor a, Tensor b, Tensor y)
    {
        Ctx();
        Launch(Kernels.AddRelu, Grid(a.Length), new(P(a), P(b), P(y), a.Length));
    }

    /// <inheritdoc/>
    private protected override void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate)
    {
        Ctx();
        if (!accumulate)
        {
            CopyCore(source, destination);
            return;
        }
        Launch(Kernels.Accumulate, Grid(source.Length), new(P(source), P(destination), source.Length, true));
    }

    /// <inheritdoc/>
    private protected override void DropoutForwardCore(Tensor x, Tensor y, float pDrop, ulong seed, ulong stream)
    {
        Ctx();
        Launch(Kernels.DropoutForward, Grid((x.Length + 3) / 4),
            new(P(x), P(y), x.Length, pDrop, (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32)));
    }

    /// <inheritdoc/>
    private protected override void DropoutBackwardCore(Tensor dy, Tensor dx, float pDrop, ulong seed, ulong stream, bool accumulate)
    {
        Ctx();
        Launch(Kernels.DropoutBackward, Grid((dy.Length + 3) / 4),
            new(P(dy), P(dx), dy.Length, pDrop, (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32), accumulate));
    }
}
