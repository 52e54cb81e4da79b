using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/pooling.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedPoolingKernelTests : EmulatedKernelTests
{
    [TestCase(2, 3, 8, 8)]
    [TestCase(3, 64, 7, 5)]
    [TestCase(1, 1, 1, 1)]
    public void EmulatedGlobalAveragePoolingMatchesItsTwin(int n, int c, int h, int w)
    {
        var lib = EmulationLibrary.Require();
        long planes = (long)n * c;
        var x = _rng.Floats(n * c * h * w);
        var dy = _rng.Floats(n * c);
        var prior = _rng.Floats(n * c * h * w);
        using var hx = HostArray<float>.Of(x);
        using var hy = new HostArray<float>(n * c);
        lib.Launch(Kernels.GlobalAvgPoolForward, GridExact(planes * 32), Block, new(hx.Ptr, hy.Ptr, planes, h * w));
        var ty = _cpu.AllocateTensor(new TensorShape(n, c));
        _cpu.GlobalAveragePoolForward(Cpu(x, n, c, h, w), ty);
        // A warp's tree sum against the CPU's vectorised sum: same terms, different order.
        Close.Check(hy.Span, Read(ty), 1e-6, 1e-6, $"global_avg_pool_forward ({_rng})");
        foreach (bool accumulate in new[] { false, true })
        {
            using var hdy = HostArray<float>.Of(dy);
            using var hdx = accumulate ? HostArray<float>.Of(prior) : new HostArray<float>(x.Length);
            lib.Launch(Kernels.GlobalAvgPoolBackward, Grid(x.Length), Block, new(hdy.Ptr, hdx.Ptr, planes, h * w, accumulate));
            var tdx = accumulate ? Cpu(prior, n, c, h, w) : _cpu.AllocateTensor(TensorShape.Nchw(n, c, h, w));
            _cpu.GlobalAveragePoolBackward(Cpu(dy, n, c), tdx, accumulate);
            Same(hdx.Span, Read(tdx), $"global_avg_pool_backward accumulate={accumulate} ({_rng})");
        }
    }

    [TestCase(2, 3, 8, 8)]
    [TestCase(2, 5, 7, 9)]
    [TestCase(64, 64, 32, 32)]
    public void EmulatedMaxPoolingMatchesItsTwin(int n, int c, int h, int w)
    {
        var lib = EmulationLibrary.Require();
        long planes = (long)n * c;
        int outputs = n * c * (h / 2) * (w / 2);
        var x = _rng.Floats(n * c * h * w);
        var dy = _rng.Floats(outputs);
        var prior = _rng.Floats(x.Length);
        using var hx = HostArray<float>.Of(x);
        using var hy = new HostArray<float>(outputs);
        lib.Launch(Kernels.MaxPoolForward, Grid(outputs), Block, new(hx.Ptr, hy.Ptr, planes, h, w));
        var tx = Cpu(x, n, c, h, w);
        var ty = _cpu.AllocateTensor(TensorShape.Nchw(n, c, h / 2, w / 2));
        _cpu.MaxPoolForward(tx, ty);
        Same(hy.Span, Read(ty), $"max_pool_forward ({_rng})");
        foreach (bool accumulate in new[] { false, true })
        {
            using var hdy = HostArray<float>.Of(dy);
            using var hdx = accumulate ? HostArray<float>.Of(prior) : new HostArray<float>(x.Length);
            bool add = accumulate;
            if (!accumulate && ((h | w) & 1) != 0)
            {
                // As CudaBackend does for odd sizes: clear dx, then accumulate (no window covers the last row/column).
                hdx.Span.Clear();
                add = true;
            }
            lib.Launch(Kernels.MaxPoolBackward, Grid(outputs), Block, new(hx.Ptr, hdy.Ptr, hdx.Ptr, planes, h, w, add));
            var tdx = accumulate ? Cpu(prior, n, c, h, w) : _cpu.AllocateTensor(TensorShape.Nchw(n, c, h, w));
            _cpu.MaxPoolBackward(tx, Cpu(dy, n, c, h / 2, w / 2), tdx, accumulate);
            Same(hdx.Span, Read(tdx), $"max_pool_backward accumulate={accumulate} ({_rng})");
        }
    }
}
