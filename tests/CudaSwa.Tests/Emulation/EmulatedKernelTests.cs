using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>
/// Every kernel of kernels/*.cu, the unchanged source built for the CPU (EmulationLibrary), run
/// with the engine's launch shapes (256-thread blocks, grids capped as on a 4-SM device so large
/// inputs take several grid-stride passes) and compared with its C# CPU twin on fresh random
/// inputs: bit for bit where the two are meant to agree exactly — in both rounding modes, so the
/// result cannot depend on whether the GPU compiler fuses a multiply and an add — and within
/// stated tolerances where the kernel's summation order or exp/log differ from the twin's.
/// Ignored with the reason where clang++-14 is absent.
/// </summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedKernelTests
{
    private const uint Block = 256;
    private const int Sms = 4;
    private CpuBackend _cpu = null!;
    private Fresh _rng = null!;

    [OneTimeSetUp]
    public void CreateCpu() => _cpu = new CpuBackend();

    [OneTimeTearDown]
    public void ReleaseCpu() => _cpu.Dispose();

    [SetUp]
    public void NewRandom() => _rng = new Fresh();

    /// <summary>The engine's grid for a grid-stride kernel over n items (CudaBackend.Grid) on a 4-SM device.</summary>
    private static uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, Sms * 32);

    private static uint GridExact(long threads) => (uint)((threads + Block - 1) / Block);

    private Tensor Cpu(float[] values, params int[] shape)
    {
        var t = _cpu.AllocateTensor(new TensorShape(shape.Length == 0 ? [values.Length] : shape));
        _cpu.Upload<float>(values, t);
        return t;
    }

    private Tensor CpuInts(int[] values)
    {
        var t = _cpu.AllocateTensor(new TensorShape(values.Length), DType.Int32);
        _cpu.Upload<int>(values, t);
        return t;
    }

    private float[] Read(Tensor t) => _cpu.ToArray(t);

    /// <summary>Bit-for-bit equality, reporting the first differing element.</summary>
    internal static void Same(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        for (int i = 0; i < actual.Length; i++)
            if (BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                Assert.Fail($"{what}: element {i} of {actual.Length} differs: emulated kernel {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):x8}), " +
                            $"CPU twin {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):x8})");
    }

    // ---------------------------------------------------------------- the library itself

    [Test]
    public void EmulatedKernelsAreExactlyTheDeclaredOnes()
    {
        var lib = EmulationLibrary.Require();
        var emulated = lib.Kernels.Where(k => !k.File.StartsWith("emulation_", StringComparison.Ordinal)).ToDictionary(k => k.File + ":" + k.Name);
        Assert.That(emulated.Keys, Is.EquivalentTo(Kernels.All.Select(k => k.File + ":" + k.Name)), "every kernel of kernels/*.cu is emulated and declared");
        foreach (var spec in Kernels.All)
        {
            var e = emulated[spec.File + ":" + spec.Name];
            Assert.That(e.Parameters.Select(p => (p.Offset, p.Size, p.IsFloat)), Is.EqualTo(spec.Parameters.Select(p => (p.Offset, p.Size, p.IsFloat))),
                $"{spec.Name}: parameter layout of the C++ signature vs the declaration in Kernels");
        }
    }

    [Test]
    public void EmulatedSharedMemoryReductionWithBarriersIsExact([Values] Rounding rounding)
    {
        var lib = EmulationLibrary.Require(rounding);
        int blocks = 5;
        // Small integers: every partial sum is exact, so any lost or doubled term shows.
        var x = _rng.Ints(blocks * 256, -1000, 1000).Select(v => (float)v).ToArray();
        using var hx = HostArray<float>.Of(x);
        using var hout = new HostArray<float>(blocks);
        lib.Launch(SelfTest.BlockSum, (uint)blocks, Block, new(hx.Ptr, hout.Ptr));
        for (int b = 0; b < blocks; b++)
            Assert.That(hout.Span[b], Is.EqualTo(x.Skip(b * 256).Take(256).Sum()), $"block {b} ({_rng})");
    }

    /// <summary>Votes and every shuffle form against CUDA's definitions (source lanes, segment widths, out-of-segment rules).</summary>
    [Test]
    public void EmulatedWarpPrimitivesFollowCudasDefinitions()
    {
        var lib = EmulationLibrary.Require();
        int threads = 64;
        using var hout = new HostArray<int>(threads * 8);
        lib.Launch(SelfTest.WarpPrimitives, 1, (uint)threads, new(hout.Ptr));
        int ballot = 0;
        for (int l = 0; l < 32; l += 3) ballot |= 1 << l;
        for (int t = 0; t < threads; t++)
        {
            int lane = t % 32, v = 100 + lane;
            int segmentEnd = (lane / 8 + 1) * 8;
            var expected = new[]
            {
                ballot, 1, 1,
                100 + (lane + 1) % 32,                // __shfl_sync wraps within the warp
                lane + 1 < 32 ? v + 1 : v,            // __shfl_down_sync: past the end returns the caller's own value
                lane - 3 >= 0 ? v - 3 : v,            // __shfl_up_sync: before the start returns its own
                (lane ^ 8) < segmentEnd ? 100 + (lane ^ 8) : v,   // xor, width 8: earlier segments are read, later ones give the caller's own
                (lane + 5) / 16 == lane / 16 ? v + 5 : v,          // down within segments of 16
            };
            Assert.That(hout.Span.Slice(t * 8, 8).ToArray(), Is.EqualTo(expected), $"thread {t}");
        }
    }

    [Test]
    public void EmulatedDeadlockIsReportedNotHung()
    {
        var lib = EmulationLibrary.Require();
        using var timeout = lib.ShortTimeout(1);
        using var hout = new HostArray<float>(32);
        var e = Assert.Throws<EmulationException>(() => lib.Launch(SelfTest.Deadlock, 1, 32, new(hout.Ptr)));
        Assert.That(e!.Message, Does.Contain("deadlock"));
    }

    [Test]
    public void EmulatedShuffleFromAReturnedLaneIsReported()
    {
        var lib = EmulationLibrary.Require();
        using var hout = new HostArray<float>(32);
        var e = Assert.Throws<EmulationException>(() => lib.Launch(SelfTest.ShuffleFromReturnedLane, 1, 32, new(hout.Ptr)));
        Assert.That(e!.Message, Does.Contain("already returned"));
    }

    [Test]
    public void EmulatedFusedRoundingReallyFusesAndPinnedRoundingDoesNot()
    {
        // Without this, "bit-exact in both rounding modes" could pass because neither mode fuses.
        int n = 4096;
        var a = _rng.Floats(n, -3, 3);
        var b = _rng.Floats(n, -3, 3);
        var c = _rng.Floats(n, -3, 3);
        var separate = new float[n];
        for (int i = 0; i < n; i++) separate[i] = a[i] * b[i] + c[i];
        foreach (var rounding in new[] { Rounding.Separate, Rounding.Fused })
        {
            var lib = EmulationLibrary.Require(rounding);
            using var ha = HostArray<float>.Of(a);
            using var hb = HostArray<float>.Of(b);
            using var hc = HostArray<float>.Of(c);
            using var plain = new HostArray<float>(n);
            using var pinned = new HostArray<float>(n);
            lib.Launch(SelfTest.MulAdd, Grid(n), Block, new(ha.Ptr, hb.Ptr, hc.Ptr, plain.Ptr, pinned.Ptr, n));
            Same(pinned.Span, separate, $"__fadd_rn(__fmul_rn(a, b), c), {rounding}");
            int fusedDiffers = 0;
            for (int i = 0; i < n; i++) fusedDiffers += plain.Span[i] != separate[i] ? 1 : 0;
            if (rounding == Rounding.Separate) Assert.That(fusedDiffers, Is.Zero, "no contraction: a*b+c rounds twice");
            else Assert.That(fusedDiffers, Is.GreaterThan(0), "with contraction a*b+c is one FMA for some inputs");
        }
    }

    // ---------------------------------------------------------------- pointwise.cu

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

    [Test]
    public void EmulatedBatchNormFoldMatchesItsTwin([Values] Rounding rounding, [Values(1, 3)] int kernel, [Values] bool convolutionBias)
    {
        var lib = EmulationLibrary.Require(rounding);
        int k = 37, c = 19, perFilter = c * kernel * kernel, n = k * perFilter;
        var w = _rng.Floats(n, -1, 1);
        var gamma = _rng.Floats(k, 0.2f, 2f);
        var beta = _rng.Floats(k, -1, 1);
        var mean = _rng.Floats(k, -2, 2);
        var variance = _rng.Floats(k, 1e-4f, 3f);
        var bias = _rng.Floats(k, -1, 1);
        using var hbias = HostArray<float>.Of(bias);
        using var hw = HostArray<float>.Of(w);
        using var hg = HostArray<float>.Of(gamma);
        using var hb = HostArray<float>.Of(beta);
        using var hm = HostArray<float>.Of(mean);
        using var hv = HostArray<float>.Of(variance);
        using var hfw = new HostArray<float>(n);
        using var hfb = new HostArray<float>(k);
        lib.Launch(Kernels.BatchNormFold, Grid(n), Block, new(hw.Ptr, convolutionBias ? hbias.Ptr : default, hg.Ptr, hb.Ptr, hm.Ptr, hv.Ptr, hfw.Ptr, hfb.Ptr, n, perFilter, 1e-5));
        var tw = _cpu.AllocateTensor(TensorShape.Nchw(k, c, kernel, kernel));
        _cpu.Upload<float>(w, tw);
        var tfw = _cpu.AllocateTensor(TensorShape.Nchw(k, c, kernel, kernel));
        var tfb = _cpu.AllocateTensor(new TensorShape(k));
        _cpu.FoldBatchNorm(tw, convolutionBias ? Cpu(bias) : default, Cpu(gamma), Cpu(beta), Cpu(mean), Cpu(variance), 1e-5, tfw, tfb);
        Same(hfw.Span, Read(tfw), $"batchnorm_fold weights ({_rng})");
        Same(hfb.Span, Read(tfb), $"batchnorm_fold bias ({_rng})");
    }

    // (n, c, hw, relu): fewer values per channel than threads in a block; several values per thread
    // and a plane size that does not divide 256; large planes.
    private static readonly (int N, int C, int Hw, bool Relu)[] ShardShapes = [(2, 3, 1, false), (5, 7, 37, true), (3, 2, 1024, true)];

    [Test]
    public void EmulatedShardedBatchNormKernelsMatchTheirTwins([Values] Rounding rounding, [Values(0, 1, 2)] int shape)
    {
        // The per-shard halves of synchronised BN. bn_moments and bn_backward_reduce sum in double in
        // another order than the twin (tolerance); bn_backward_elementwise pins every step: bit for bit.
        var lib = EmulationLibrary.Require(rounding);
        var (n, c, hw, relu) = ShardShapes[shape];
        int total = n * c * hw;
        var offsets = _rng.Floats(c, -20, 20);
        var x = _rng.Floats(total, -1, 1).Select((v, i) => v + offsets[(i / hw) % c]).ToArray();
        var y = _rng.Floats(total, -1, 1);
        var dy = _rng.Floats(total);
        var gamma = _rng.Floats(c, 0.5f, 1.5f);
        var mean = _rng.Floats(c, -20, 20);
        var inv = _rng.Floats(c, 0.5f, 2f);
        var md = _rng.Floats(c, -50, 50);  // the batch's sums of dy and dy*xhat
        var mdx = _rng.Floats(c, -50, 50);
        double count = 3 + _rng.Random.Next(500);
        var dg0 = _rng.Floats(c);
        var db0 = _rng.Floats(c);
        var prior = _rng.Floats(total);
        using var hx = HostArray<float>.Of(x);
        using var hy = HostArray<float>.Of(y);
        using var hdy = HostArray<float>.Of(dy);
        using var hg = HostArray<float>.Of(gamma);
        using var hmean = HostArray<float>.Of(mean);
        using var hinv = HostArray<float>.Of(inv);
        using var hmd = HostArray<float>.Of(md);
        using var hmdx = HostArray<float>.Of(mdx);
        using var hMomentMean = HostArray<float>.Of(Close.Poison(c));
        using var hMomentM2 = HostArray<float>.Of(Close.Poison(c));
        using var hs1 = HostArray<float>.Of(Close.Poison(c));
        using var hs2 = HostArray<float>.Of(Close.Poison(c));
        using var hdg = HostArray<float>.Of(dg0);
        using var hdb = HostArray<float>.Of(db0);
        using var hdx = HostArray<float>.Of(Close.Poison(total));
        using var hdxAcc = HostArray<float>.Of(prior);
        var yPtr = relu ? hy.Ptr : default;
        lib.Launch(Kernels.BatchNormMoments, (uint)c, Block, new(hx.Ptr, hMomentMean.Ptr, hMomentM2.Ptr, n, c, hw));
        lib.Launch(Kernels.BatchNormBackwardReduce, (uint)c, Block, new(hx.Ptr, yPtr, hdy.Ptr, hmean.Ptr, hinv.Ptr, hs1.Ptr, hs2.Ptr, hdg.Ptr, hdb.Ptr, n, c, hw));
        lib.Launch(Kernels.BatchNormBackwardElementwise, Grid(total), Block, new(hx.Ptr, yPtr, hdy.Ptr, hg.Ptr, hmean.Ptr, hinv.Ptr, hmd.Ptr, hmdx.Ptr, count, hdx.Ptr, total, c, hw, false));
        lib.Launch(Kernels.BatchNormBackwardElementwise, Grid(total), Block, new(hx.Ptr, yPtr, hdy.Ptr, hg.Ptr, hmean.Ptr, hinv.Ptr, hmd.Ptr, hmdx.Ptr, count, hdxAcc.Ptr, total, c, hw, true));

        var tx = _cpu.AllocateTensor(TensorShape.Nchw(n, c, hw, 1));
        _cpu.Upload<float>(x, tx);
        var ty = _cpu.AllocateTensor(TensorShape.Nchw(n, c, hw, 1));
        _cpu.Upload<float>(y, ty);
        var tdy = _cpu.AllocateTensor(TensorShape.Nchw(n, c, hw, 1));
        _cpu.Upload<float>(dy, tdy);
        Tensor tm = Cpu(new float[c]), tm2 = Cpu(new float[c]), ts1 = Cpu(new float[c]), ts2 = Cpu(new float[c]), tdg = Cpu(dg0), tdb = Cpu(db0);
        _cpu.BatchNormMoments(tx, tm, tm2);
        _cpu.BatchNormBackwardReduce(tx, relu ? ty : default, tdy, Cpu(mean), Cpu(inv), ts1, ts2, tdg, tdb);
        var tdx = _cpu.AllocateTensor(TensorShape.Nchw(n, c, hw, 1));
        _cpu.BatchNormBackwardElementwise(tx, relu ? ty : default, tdy, Cpu(gamma), Cpu(mean), Cpu(inv), Cpu(md), Cpu(mdx), count, tdx, accumulate: false);
        var tdxAcc = _cpu.AllocateTensor(TensorShape.Nchw(n, c, hw, 1));
        _cpu.Upload<float>(prior, tdxAcc);
        _cpu.BatchNormBackwardElementwise(tx, relu ? ty : default, tdy, Cpu(gamma), Cpu(mean), Cpu(inv), Cpu(md), Cpu(mdx), count, tdxAcc, accumulate: true);

        Close.Check(hMomentMean.Span, Read(tm), 1e-6, 1e-6, $"bn_moments mean ({_rng})");
        Close.Check(hMomentM2.Span, Read(tm2), 1e-6, 1e-5, $"bn_moments M2 ({_rng})");
        Close.Check(hs1.Span, Read(ts1), 1e-5, 1e-5, $"bn_backward_reduce sum dy ({_rng})");
        Close.Check(hs2.Span, Read(ts2), 1e-4, 1e-5, $"bn_backward_reduce sum dy*xhat ({_rng})");
        Close.Check(hdb.Span, Read(tdb), 1e-5, 1e-5, $"bn_backward_reduce dBeta ({_rng})");
        Close.Check(hdg.Span, Read(tdg), 1e-4, 1e-5, $"bn_backward_reduce dGamma ({_rng})");
        Same(hdx.Span, Read(tdx), $"bn_backward_elementwise ({_rng})");
        Same(hdxAcc.Span, Read(tdxAcc), $"bn_backward_elementwise accumulating ({_rng})");
    }

    [Test]
    public void EmulatedMergeShardsMatchesItsTwin([Values] Rounding rounding, [Values(1, 3, 8)] int ranks)
    {
        // Chan's merge of the ranks' rows pins every double step in the twin's order: bit for bit.
        var lib = EmulationLibrary.Require(rounding);
        int c = 300, row = 1 + 2 * c; // more channels than one block
        var table = new float[ranks * row];
        for (int r = 0; r < ranks; r++)
        {
            int count = r == 1 ? 0 : 1 + _rng.Random.Next(5000); // rank 1 (where there is one) holds no sample
            table[r * row] = count;
            var means = _rng.Floats(c, -3, 3);
            var m2s = _rng.Floats(c, 0, 2 * Math.Max(count, 1));
            for (int ch = 0; ch < c; ch++)
            {
                table[r * row + 1 + ch] = count == 0 ? 0 : means[ch];
                table[r * row + 1 + c + ch] = count == 0 ? 0 : m2s[ch];
            }
        }
        var rm = _rng.Floats(c);
        var rv = _rng.Floats(c, 0.5f, 2f);
        double factor = _rng.Random.NextDouble();
        using var hTable = HostArray<float>.Of(table);
        using var hrm = HostArray<float>.Of(rm);
        using var hrv = HostArray<float>.Of(rv);
        using var hsm = HostArray<float>.Of(Close.Poison(c));
        using var hsi = HostArray<float>.Of(Close.Poison(c));
        using var hbv = HostArray<float>.Of(Close.Poison(c));
        lib.Launch(Kernels.BatchNormMergeShards, GridExact(c), Block, new(hTable.Ptr, ranks, c, factor, 1e-5, hrm.Ptr, hrv.Ptr, hsm.Ptr, hsi.Ptr, hbv.Ptr));
        Tensor trm = Cpu(rm), trv = Cpu(rv), tsm = Cpu(new float[c]), tsi = Cpu(new float[c]), tbv = Cpu(new float[c]);
        _cpu.BatchNormMergeShards(Cpu(table), ranks, factor, 1e-5, trm, trv, tsm, tsi, tbv);
        Same(hrm.Span, Read(trm), $"bn_merge_shards running mean ({_rng})");
        Same(hrv.Span, Read(trv), $"bn_merge_shards running variance ({_rng})");
        Same(hsm.Span, Read(tsm), $"bn_merge_shards mean ({_rng})");
        Same(hsi.Span, Read(tsi), $"bn_merge_shards inverse std ({_rng})");
        Same(hbv.Span, Read(tbv), $"bn_merge_shards biased variance ({_rng})");
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
            CpuPointwise.AddRowBias(py, pb, rows, cols);
            CpuPointwise.ColumnSumAccumulate(pdy, pdb, rows, cols);
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

    // ---------------------------------------------------------------- swag.cu

    [Test]
    public void EmulatedSwagCollectMatchesItsTwin([Values] Rounding rounding, [Values(1, 4099)] int n, [Values(1f, 0.25f)] float alpha, [Values] bool deviation)
    {
        var lib = EmulationLibrary.Require(rounding);
        var w = _rng.Floats(n, -3, 3);
        var mean = _rng.Floats(n, -3, 3);
        var square = _rng.Floats(n, 0, 9);
        var poison = Close.Poison(n);
        using var hw = HostArray<float>.Of(w);
        using var hm = HostArray<float>.Of(mean);
        using var hs = HostArray<float>.Of(square);
        using var hd = HostArray<float>.Of(poison);
        lib.Launch(Kernels.SwagCollect, Grid(n), Block, new(hw.Ptr, hm.Ptr, hs.Ptr, deviation ? hd.Ptr : default, n, alpha));
        var tm = Cpu(mean);
        var ts = Cpu(square);
        var td = Cpu(poison);
        _cpu.SwagCollect(Cpu(w), tm, ts, deviation ? td : default, alpha);
        Same(hm.Span, Read(tm), $"swag_collect mean alpha={alpha} ({_rng})");
        Same(hs.Span, Read(ts), $"swag_collect mean of squares alpha={alpha} ({_rng})");
        Same(hd.Span, Read(td), $"swag_collect deviation ({_rng})");
    }

    [Test]
    public void EmulatedSwagSampleMatchesItsTwin([Values] Rounding rounding, [Values(0, 3)] int columns, [Values(5, 4099)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var mean = _rng.Floats(n, -1, 1);
        var square = mean.Select(m => m * m + 0.05f * (float)_rng.Random.NextDouble() - 0.01f).ToArray(); // some variances round below the floor
        var deviations = _rng.Floats(Math.Max(1, columns) * n, -0.5f, 0.5f);
        var normals = _rng.Floats(Math.Max(1, columns), -2, 2);
        ulong seed = (ulong)_rng.Random.NextInt64() | 1UL << 63;
        uint sample = (uint)_rng.Random.Next();
        var spec = new SwagSampleSpec(columns, 0.7f, columns > 0 ? 0.4f : 0f, 1e-6f, seed, sample);
        using var hm = HostArray<float>.Of(mean);
        using var hs = HostArray<float>.Of(square);
        using var hd = HostArray<float>.Of(deviations);
        using var hz = HostArray<float>.Of(normals);
        using var ho = HostArray<float>.Of(Close.Poison(n));
        lib.Launch(Kernels.SwagSample, Grid(n), Block, new(hm.Ptr, hs.Ptr, columns > 0 ? hd.Ptr : default, columns > 0 ? hz.Ptr : default, columns, n,
            spec.DiagonalScale, spec.LowRankScale, spec.VarianceFloor, (uint)seed, (uint)(seed >> 32), sample, ho.Ptr));
        var to = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.SwagSample(Cpu(mean), Cpu(square), columns > 0 ? Cpu(deviations) : default, columns > 0 ? Cpu(normals) : default, spec, to);
        Same(ho.Span, Read(to), $"swag_sample columns={columns} ({_rng})");
    }

    // ---------------------------------------------------------------- pooling.cu

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

    // ---------------------------------------------------------------- loss.cu

    [TestCase(1, 10)]
    [TestCase(37, 10)]
    [TestCase(300, 100)]
    public void EmulatedSoftmaxCrossEntropyMatchesItsTwin(int n, int k)
    {
        var lib = EmulationLibrary.Require();
        var z = _rng.Floats(n * k, -6, 6);
        var labels = _rng.Ints(n, 0, k);
        float statsLoss = (float)_rng.Random.NextDouble(), statsCorrect = _rng.Random.Next(10);
        using var hz = HostArray<float>.Of(z);
        using var hl = HostArray<int>.Of(labels);
        using var hdz = new HostArray<float>(n * k);
        using var rows = new HostArray<float>(2 * n);
        var rowCorrect = rows.Ptr.Plus(4L * n);
        using var hstats = HostArray<float>.Of([statsLoss, statsCorrect]);
        lib.Launch(Kernels.SoftmaxCrossEntropy, GridExact((long)n * 32), Block, new(hz.Ptr, hl.Ptr, hdz.Ptr, rows.Ptr, rowCorrect, n, k));
        lib.Launch(Kernels.AddRowStats, 1, Block, new(rows.Ptr, rowCorrect, n, hstats.Ptr));

        var tdz = _cpu.AllocateTensor(new TensorShape(n, k));
        var tstats = Cpu([statsLoss, statsCorrect]);
        _cpu.SoftmaxCrossEntropy(Cpu(z, n, k), CpuInts(labels), tdz, tstats);
        var stats = Read(tstats);
        // expf/logf in float against the twin's double exp/log: a few ulps per row.
        Close.Check(hdz.Span, Read(tdz), 1e-7, 1e-5, $"softmax_cross_entropy gradient ({_rng})");
        Close.Check(hstats.Span[..1], stats.AsSpan(0, 1), 1e-5 * n, 1e-5, $"loss sum ({_rng})");
        Assert.That(hstats.Span[1], Is.EqualTo(stats[1]), $"correct count ({_rng})");

        // Evaluation form: no gradient buffer (null pointer).
        using var hstats2 = HostArray<float>.Of([0f, 0f]);
        lib.Launch(Kernels.SoftmaxCrossEntropy, GridExact((long)n * 32), Block, new(hz.Ptr, hl.Ptr, DevicePtr.Null, rows.Ptr, rowCorrect, n, k));
        lib.Launch(Kernels.AddRowStats, 1, Block, new(rows.Ptr, rowCorrect, n, hstats2.Ptr));
        Assert.That(hstats2.Span[1], Is.EqualTo(stats[1] - statsCorrect), "correct count without gradient");
    }

    [TestCase(3, 10)]
    [TestCase(65, 100)]
    public void EmulatedSoftmaxMatchesItsTwin(int n, int k)
    {
        var lib = EmulationLibrary.Require();
        var z = _rng.Floats(n * k, -8, 8);
        using var hz = HostArray<float>.Of(z);
        using var hp = new HostArray<float>(n * k);
        lib.Launch(Kernels.Softmax, GridExact((long)n * 32), Block, new(hz.Ptr, hp.Ptr, n, k));
        var tp = _cpu.AllocateTensor(new TensorShape(n, k));
        _cpu.Softmax(Cpu(z, n, k), tp);
        Close.Check(hp.Span, Read(tp), 1e-8, 1e-5, $"softmax ({_rng})");
    }

    // ---------------------------------------------------------------- optim.cu

    /// <summary>
    /// The multi-tensor SWA/EMA update over pairs whose lengths straddle the chunk size and the
    /// 4-wide vector step (tails of 1..3), one pair deliberately misaligned (the scalar path), an
    /// empty pair, alpha = 1 over NaN (an exact copy) and a running mean: bit for bit against
    /// CpuOptim.AverageUpdate, in both rounding modes.
    /// </summary>
    [Test]
    public void EmulatedAverageUpdateMatchesItsTwinBitForBit([Values] Rounding rounding)
    {
        var lib = EmulationLibrary.Require(rounding);
        int chunk = CudaBackend.AverageChunk;
        int[] lengths = [1, 3, 4, 5, 0, chunk - 1, chunk, chunk + 1, 2 * chunk + 7, 50_003];
        var averages = lengths.Select(l => _rng.Floats(l, -3, 3)).ToArray();
        averages[3] = Close.Poison(lengths[3]); // NaN: the first update (alpha = 1) must overwrite it exactly
        var hostAverages = averages.Select((a, i) => HostArray<float>.Of(a, offsetElements: i == 7 ? 1 : 0)).ToArray();
        var cpuAverages = averages.Select(a => Cpu(a)).ToArray();
        try
        {
            foreach (float alpha in new[] { 1f, 1f / 3, (float)_rng.Random.NextDouble() })
            {
                var currents = lengths.Select(l => _rng.Floats(l, -3, 3)).ToArray();
                var hostCurrents = currents.Select((c, i) => HostArray<float>.Of(c, offsetElements: i == 8 ? 3 : 0)).ToArray();
                try
                {
                    var block = AverageTables.Build(lengths.Select((l, i) => new AverageTables.Pair(hostAverages[i].Ptr.Address, hostCurrents[i].Ptr.Address, l)).ToList(), chunk);
                    using var tables = HostArray<byte>.Of(block.Bytes);
                    var t = tables.Ptr;
                    lib.Launch(Kernels.AverageUpdate, (uint)block.Chunks, Block, new(t.Plus(block.AveragesOffset), t.Plus(block.CurrentsOffset), t.Plus(block.LengthsOffset),
                        t.Plus(block.ChunkPairOffset), t.Plus(block.ChunkStartOffset), chunk, alpha));
                    using var plan = _cpu.PrepareAverage(cpuAverages.Select((a, i) => new AveragePair(a, Cpu(currents[i]))).ToList());
                    _cpu.AverageUpdate(plan, alpha);
                    for (int i = 0; i < lengths.Length; i++)
                        Same(hostAverages[i].Span, Read(cpuAverages[i]), $"pair {i} (length {lengths[i]}), alpha {alpha} ({_rng})");
                }
                finally
                {
                    foreach (var h in hostCurrents) h.Dispose();
                }
            }
        }
        finally
        {
            foreach (var h in hostAverages) h.Dispose();
        }
    }

    [Test]
    public void EmulatedSgdStepMatchesItsTwinBitForBit([Values] Rounding rounding, [Values(false, true)] bool nesterov, [Values(1037, 3_000_005)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var w = _rng.Floats(n);
        var g = _rng.Floats(n);
        var v = _rng.Floats(n);
        var h = new SgdHyper((float)_rng.Random.NextDouble() * 0.2f, 0.9f, (float)_rng.Random.NextDouble() * 1e-3f, nesterov);
        using var hw = HostArray<float>.Of(w);
        using var hg = HostArray<float>.Of(g);
        using var hv = HostArray<float>.Of(v);
        lib.Launch(Kernels.SgdStep, Grid(n), Block, new(hw.Ptr, hg.Ptr, hv.Ptr, n, h.LearningRate, h.Momentum, h.WeightDecay, h.Nesterov));
        var tw = Cpu(w);
        var tv = Cpu(v);
        _cpu.SgdStep(tw, Cpu(g), tv, h);
        Same(hv.Span, Read(tv), $"velocity {h} ({_rng})");
        Same(hw.Span, Read(tw), $"weights {h} ({_rng})");
    }

    // ---------------------------------------------------------------- batchnorm.cu

    [Test]
    public void EmulatedBatchNormMergeMatchesItsTwinBitForBit([Values] Rounding rounding, [Values(1, 33, 300)] int channels)
    {
        var lib = EmulationLibrary.Require(rounding);
        double eps = 1e-5;
        var accMean = _rng.Floats(channels, -2, 2);
        var accM2 = _rng.Floats(channels, 0, 50);
        using var hm = HostArray<float>.Of(accMean);
        using var h2 = HostArray<float>.Of(accM2);
        var tm = Cpu(accMean);
        var t2 = Cpu(accM2);
        long previous = 0;
        foreach (long batchCount in new long[] { 64 * 1024, 17 * 64, 128 * 256 })
        {
            var mean = _rng.Floats(channels, -2, 2);
            var invStd = _rng.Floats(channels, 0.2f, 5f);
            using var hbm = HostArray<float>.Of(mean);
            using var hbi = HostArray<float>.Of(invStd);
            lib.Launch(Kernels.BatchNormMergeStatistics, GridExact(channels), Block, new(hbm.Ptr, hbi.Ptr, hm.Ptr, h2.Ptr, channels, eps, batchCount, previous));
            _cpu.BatchNormMergeStatistics(Cpu(mean), Cpu(invStd), eps, batchCount, previous, tm, t2);
            Same(hm.Span, Read(tm), $"merged mean after {previous} + {batchCount} ({_rng})");
            Same(h2.Span, Read(t2), $"merged M2 after {previous} + {batchCount} ({_rng})");
            previous += batchCount;
        }
    }

    // ---------------------------------------------------------------- augment.cu

    [TestCase(Rounding.Separate, 3, PaddingMode.Zero, true, true, 64)]
    [TestCase(Rounding.Fused, 3, PaddingMode.Reflect, true, true, 64)]
    [TestCase(Rounding.Separate, 1, PaddingMode.Zero, false, true, 17)]
    [TestCase(Rounding.Separate, 4, PaddingMode.Reflect, true, false, 9)]
    [TestCase(Rounding.Fused, 3, PaddingMode.Zero, true, true, 1000)]
    public void EmulatedAugmentationMatchesItsTwinBitForBit(Rounding rounding, int channels, PaddingMode padding, bool crop, bool flip, int batch)
    {
        var lib = EmulationLibrary.Require(rounding);
        int count = Math.Max(200, batch), h = 32, w = 32;
        var images = new byte[count * channels * h * w];
        _rng.Random.NextBytes(images);
        var sourceLabels = _rng.Ints(count, 0, 10);
        var indices = _rng.Ints(batch, 0, count);
        var spec = new AugmentSpec
        {
            Pad = 4, Padding = padding, Crop = crop, Flip = flip, Seed = (ulong)_rng.Random.NextInt64(),
            Mean = _rng.Floats(channels, 0.2f, 0.6f), Std = _rng.Floats(channels, 0.1f, 0.4f),
        };
        int epoch = _rng.Random.Next(300);
        var scale = new float[4];
        var shift = new float[4];
        for (int ch = 0; ch < channels; ch++)
        {
            scale[ch] = 1f / (255f * spec.Std[ch]);
            shift[ch] = -spec.Mean[ch] / spec.Std[ch];
        }
        using var himg = HostArray<byte>.Of(images);
        using var hsrc = HostArray<int>.Of(sourceLabels);
        using var hidx = HostArray<int>.Of(indices);
        using var hx = new HostArray<float>(batch * channels * h * w);
        using var hlab = new HostArray<int>(batch);
        lib.Launch(Kernels.AugmentBatch, Grid(hx.Length), Block, new(himg.Ptr, hsrc.Ptr, hidx.Ptr, hx.Ptr, hlab.Ptr,
            batch, channels, h, w, spec.Pad, spec.Crop, spec.Flip, spec.Padding == PaddingMode.Reflect, epoch, (uint)spec.Seed, (uint)(spec.Seed >> 32),
            scale[0], scale[1], scale[2], scale[3], shift[0], shift[1], shift[2], shift[3]));

        var timages = _cpu.AllocateTensor(TensorShape.Nchw(count, channels, h, w), DType.UInt8);
        _cpu.Upload<byte>(images, timages);
        var tx = _cpu.AllocateTensor(TensorShape.Nchw(batch, channels, h, w));
        var tlab = _cpu.AllocateTensor(new TensorShape(batch), DType.Int32);
        _cpu.AugmentBatch(timages, CpuInts(sourceLabels), CpuInts(indices), spec, epoch, tx, tlab);
        Same(hx.Span, Read(tx), $"augment_batch {padding} crop={crop} flip={flip} ({_rng})");
        var labels = new int[batch];
        _cpu.Download<int>(tlab, labels);
        Assert.That(hlab.ToArray(), Is.EqualTo(labels), "labels");
    }
}

/// <summary>The deliberately faulty kernels of emulation_selftest.cu (not part of the engine).</summary>
internal static class SelfTest
{
    public static readonly KernelSpec<OneBuffer> Deadlock = new("emulation_selftest.cu", "selftest_deadlock");
    public static readonly KernelSpec<OneBuffer> ShuffleFromReturnedLane = new("emulation_selftest.cu", "selftest_shuffle_from_returned_lane");
    public static readonly KernelSpec<BufferAndLength> WritePastEnd = new("emulation_selftest.cu", "selftest_write_past_end");
    public static readonly KernelSpec<MulAddArgs> MulAdd = new("emulation_selftest.cu", "selftest_mul_add");
    public static readonly KernelSpec<TwoBuffers> BlockSum = new("emulation_selftest.cu", "selftest_block_sum");
    public static readonly KernelSpec<OneBuffer> WarpPrimitives = new("emulation_selftest.cu", "selftest_warp_primitives");

    internal readonly record struct OneBuffer(DevicePtr p);
    internal readonly record struct TwoBuffers(DevicePtr x, DevicePtr y);
    internal readonly record struct BufferAndLength(DevicePtr p, int n);
    internal readonly record struct MulAddArgs(DevicePtr a, DevicePtr b, DevicePtr c, DevicePtr plain, DevicePtr pinned, int n);
}
