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

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of pointwise.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Elementwise.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<ReluForwardArgs> ReluForward = new("pointwise.cu", "relu_forward");
        public static readonly KernelSpec<ReluBackwardArgs> ReluBackward = new("pointwise.cu", "relu_backward");
        public static readonly KernelSpec<AddArgs> Add = new("pointwise.cu", "add");
        public static readonly KernelSpec<AddArgs> AddRelu = new("pointwise.cu", "add_relu");
        public static readonly KernelSpec<PointOnLineArgs> PointOnLine = new("pointwise.cu", "point_on_line");
        public static readonly KernelSpec<AccumulateArgs> Accumulate = new("pointwise.cu", "accumulate");
        public static readonly KernelSpec<DropoutForwardArgs> DropoutForward = new("pointwise.cu", "dropout_forward");
        public static readonly KernelSpec<DropoutBackwardArgs> DropoutBackward = new("pointwise.cu", "dropout_backward");
    }
}

internal readonly record struct ReluForwardArgs(DevicePtr x, DevicePtr y, long n);
internal readonly record struct ReluBackwardArgs(DevicePtr y, DevicePtr dy, DevicePtr dx, long n, Flag accumulate);
internal readonly record struct AddArgs(DevicePtr a, DevicePtr b, DevicePtr y, long n);
internal readonly record struct PointOnLineArgs(DevicePtr origin, DevicePtr direction, float s, DevicePtr y, long n);
internal readonly record struct AccumulateArgs(DevicePtr src, DevicePtr dst, long n, Flag accumulate);
internal readonly record struct DropoutForwardArgs(DevicePtr x, DevicePtr y, long n, float p, uint seed_lo, uint seed_hi, uint stream_lo, uint stream_hi);
internal readonly record struct DropoutBackwardArgs(DevicePtr dy, DevicePtr dx, long n, float p, uint seed_lo, uint seed_hi, uint stream_lo, uint stream_hi, Flag accumulate);
