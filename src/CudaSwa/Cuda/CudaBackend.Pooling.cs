using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- pooling (kernels)

    /// <inheritdoc/>
    private protected override void GlobalAveragePoolForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        long planes = (long)x.Shape.N * x.Shape.C;
        Launch(Kernels.GlobalAvgPoolForward, GridExact(planes * 32), new(P(x), P(y), planes, x.Shape.H * x.Shape.W));
    }

    /// <inheritdoc/>
    private protected override void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        long planes = (long)dx.Shape.N * dx.Shape.C;
        Launch(Kernels.GlobalAvgPoolBackward, Grid(dx.Length), new(P(dy), P(dx), planes, dx.Shape.H * dx.Shape.W, accumulate));
    }

    /// <inheritdoc/>
    private protected override void MaxPoolForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        Launch(Kernels.MaxPoolForward, Grid(y.Length), new(P(x), P(y), (long)x.Shape.N * x.Shape.C, x.Shape.H, x.Shape.W));
    }

    /// <inheritdoc/>
    private protected override void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        // Odd sizes leave a last row/column that no window covers: clear dx first so it gets 0.
        if (!accumulate && ((x.Shape.H | x.Shape.W) & 1) != 0)
        {
            FillCore(dx, 0f);
            accumulate = true;
        }
        Launch(Kernels.MaxPoolBackward, Grid(dy.Length), new(P(x), P(dy), P(dx), (long)x.Shape.N * x.Shape.C, x.Shape.H, x.Shape.W, accumulate));
    }

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of pooling.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Pooling.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<GlobalAvgPoolForwardArgs> GlobalAvgPoolForward = new("pooling.cu", "global_avg_pool_forward");
        public static readonly KernelSpec<GlobalAvgPoolBackwardArgs> GlobalAvgPoolBackward = new("pooling.cu", "global_avg_pool_backward");
        public static readonly KernelSpec<MaxPoolForwardArgs> MaxPoolForward = new("pooling.cu", "max_pool_forward");
        public static readonly KernelSpec<MaxPoolBackwardArgs> MaxPoolBackward = new("pooling.cu", "max_pool_backward");
    }
}

internal readonly record struct GlobalAvgPoolForwardArgs(DevicePtr x, DevicePtr y, long planes, int hw);
internal readonly record struct GlobalAvgPoolBackwardArgs(DevicePtr dy, DevicePtr dx, long planes, int hw, Flag accumulate);
internal readonly record struct MaxPoolForwardArgs(DevicePtr x, DevicePtr y, long planes, int h, int w);
internal readonly record struct MaxPoolBackwardArgs(DevicePtr x, DevicePtr dy, DevicePtr dx, long planes, int h, int w, Flag accumulate);
