using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/pointwise.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedPointwiseKernelTests : EmulatedKernelTests
{
    [Test]
    public void EmulatedReluMatchesItsTwin([Values] Rounding rounding, [Values(1, 37, 70_001, 3_000_017)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var x = _rng.Floats(n, -2, 2);
        float[] special = [float.NaN, -0f, 0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon];
        for (int i = 0; i < Math.Min(n, special.Length); i++) x[i] = special[i]; // NaN must stay NaN, -0 become +0 in both
        var dy = _rng.Floats(n);
        var prior = _rng.Floats(n);
        using var hx = HostArray<float>.Of(x);
        using var hy = new HostArray<float>(n);
        lib.Launch(Kernels.ReluForward, Grid(n), Block, new(hx.Ptr, hy.Ptr, n));
        var ty = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.ReluForward(Cpu(x), ty);
        Same(hy.Span, Read(ty), $"relu_forward n={n} ({_rng})");

        using var hdy = HostArray<float>.Of(dy);
        foreach (bool accumulate in new[] { false, true })
        {
            using var hdx = accumulate ? HostArray<float>.Of(prior) : new HostArray<float>(n);
            lib.Launch(Kernels.ReluBackward, Grid(n), Block, new(hy.Ptr, hdy.Ptr, hdx.Ptr, n, accumulate));
            var tdx = accumulate ? Cpu(prior) : _cpu.AllocateTensor(new TensorShape(n));
            _cpu.ReluBackward(ty, Cpu(dy), tdx, accumulate);
            Same(hdx.Span, Read(tdx), $"relu_backward accumulate={accumulate} n={n} ({_rng})");
        }
    }

    [Test]
    public void EmulatedAddAndAccumulateMatchTheirTwins([Values(5, 3_000_001)] int n)
    {
        var lib = EmulationLibrary.Require();
        var a = _rng.Floats(n);
        var b = _rng.Floats(n);
        using var ha = HostArray<float>.Of(a);
        using var hb = HostArray<float>.Of(b);
        using var hy = new HostArray<float>(n);
        lib.Launch(Kernels.Add, Grid(n), Block, new(ha.Ptr, hb.Ptr, hy.Ptr, n));
        var ty = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.Add(Cpu(a), Cpu(b), ty);
        Same(hy.Span, Read(ty), $"add ({_rng})");

        foreach (bool accumulate in new[] { false, true })
        {
            using var hdst = HostArray<float>.Of(b);
            lib.Launch(Kernels.Accumulate, Grid(n), Block, new(ha.Ptr, hdst.Ptr, n, accumulate));
            var tdst = Cpu(b);
            _cpu.AccumulateGradient(Cpu(a), tdst, accumulate);
            Same(hdst.Span, Read(tdst), $"accumulate={accumulate} ({_rng})");
        }
    }

    [Test]
    public void EmulatedFusedReluKernelsMatchTheirTwins([Values] Rounding rounding, [Values(5, 70_001, 3_000_017)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var a = _rng.Floats(n, -2, 2);
        var b = _rng.Floats(n, -2, 2);
        a[0] = float.NaN; // stays NaN through the fused ReLU, as through the plain one
        using var ha = HostArray<float>.Of(a);
        using var hb = HostArray<float>.Of(b);
        using var hy = new HostArray<float>(n);
        lib.Launch(Kernels.AddRelu, Grid(n), Block, new(ha.Ptr, hb.Ptr, hy.Ptr, n));
        var ty = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.AddRelu(Cpu(a), Cpu(b), ty);
        Same(hy.Span, Read(ty), $"add_relu n={n} ({_rng})");

        // Per-channel bias and ReLU over NCHW with a channel count that does not divide the plane.
        int c = 7, hw = Math.Max(1, n / (3 * c));
        int total = 3 * c * hw;
        var y = _rng.Floats(total, -2, 2);
        var bias = _rng.Floats(c, -1, 1);
        using var hyb = HostArray<float>.Of(y);
        using var hbias = HostArray<float>.Of(bias);
        lib.Launch(Kernels.AddChannelBiasRelu, Grid(total), Block, new(hyb.Ptr, hbias.Ptr, total, c, hw));
        var tyb = _cpu.AllocateTensor(TensorShape.Nchw(3, c, hw, 1));
        _cpu.Upload<float>(y, tyb);
        _cpu.AddChannelBiasRelu(tyb, Cpu(bias));
        Same(hyb.Span, Read(tyb), $"add_channel_bias_relu n={total} ({_rng})");
    }

    [TestCase(1, 10)]
    [TestCase(128, 10)]
    [TestCase(33, 513)]
    public unsafe void EmulatedLinearBiasKernelsMatchTheirTwins(int rows, int cols)
    {
        var lib = EmulationLibrary.Require();
        var y = _rng.Floats(rows * cols);
        var b = _rng.Floats(cols);
        var dy = _rng.Floats(rows * cols);
        var db = _rng.Floats(cols);
        using var hy = HostArray<float>.Of(y);
        using var hb = HostArray<float>.Of(b);
        lib.Launch(Kernels.AddRowBias, Grid((long)rows * cols), Block, new(hy.Ptr, hb.Ptr, rows, cols));
        using var hdy = HostArray<float>.Of(dy);
        using var hdb = HostArray<float>.Of(db);
        lib.Launch(Kernels.ColumnSumAccumulate, GridExact(cols), Block, new(hdy.Ptr, hdb.Ptr, rows, cols));
        fixed (float* py = y, pb = b, pdy = dy, pdb = db)
        {
            CpuBackend.AddRowBias(py, pb, rows, cols);
            CpuBackend.ColumnSumAccumulate(pdy, pdb, rows, cols);
        }
        Same(hy.Span, y, $"add_row_bias ({_rng})");
        Same(hdb.Span, db, $"column_sum_accumulate ({_rng})");
    }

    [Test]
    public void EmulatedDropoutMasksMatchTheirTwin([Values] Rounding rounding, [Values(1, 7, 4099, 3_000_003)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var x = _rng.Floats(n);
        var dy = _rng.Floats(n);
        var prior = _rng.Floats(n);
        float p = 0.05f + 0.9f * (float)_rng.Random.NextDouble();
        // Seeds and streams with high bits set, so both halves of each reach the kernel.
        ulong seed = (ulong)_rng.Random.NextInt64() | 1UL << 63, stream = (ulong)_rng.Random.NextInt64() | 1UL << 62;
        using var hx = HostArray<float>.Of(x);
        using var hy = new HostArray<float>(n);
        lib.Launch(Kernels.DropoutForward, Grid((n + 3) / 4), Block, new(hx.Ptr, hy.Ptr, n, p, (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32)));
        var ty = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.DropoutForward(Cpu(x), ty, p, seed, stream);
        Same(hy.Span, Read(ty), $"dropout_forward p={p} ({_rng})");
        foreach (bool accumulate in new[] { false, true })
        {
            using var hdy = HostArray<float>.Of(dy);
            using var hdx = accumulate ? HostArray<float>.Of(prior) : new HostArray<float>(n);
            lib.Launch(Kernels.DropoutBackward, Grid((n + 3) / 4), Block,
                new(hdy.Ptr, hdx.Ptr, n, p, (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32), accumulate));
            var tdx = accumulate ? Cpu(prior) : _cpu.AllocateTensor(new TensorShape(n));
            _cpu.DropoutBackward(Cpu(dy), tdx, p, seed, stream, accumulate);
            Same(hdx.Span, Read(tdx), $"dropout_backward accumulate={accumulate} ({_rng})");
        }
    }

    [Test]
    public void EmulatedLandscapePointOnLineMatchesItsTwin([Values] Rounding rounding, [Values(3, 70_001)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var a = _rng.Floats(n, -2, 2);
        var d = _rng.Floats(n, -1, 1);
        float s = (float)(_rng.Random.NextDouble() * 4 - 2);
        using var ha = HostArray<float>.Of(a);
        using var hd = HostArray<float>.Of(d);
        using var hy = HostArray<float>.Of(Close.Poison(n));
        lib.Launch(Kernels.PointOnLine, Grid(n), Block, new(ha.Ptr, hd.Ptr, s, hy.Ptr, n));
        var ty = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.PointOnLine(Cpu(a), Cpu(d), s, ty);
        Same(hy.Span, Read(ty), $"point_on_line s={s} ({_rng})");
    }
}
