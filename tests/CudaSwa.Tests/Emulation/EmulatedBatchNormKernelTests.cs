using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/batchnorm.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedBatchNormKernelTests : EmulatedKernelTests
{
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
}
