using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override AveragePlan PrepareAverageCore(AveragePair[] pairs) => new CpuAveragePlan(this, pairs);
    /// <inheritdoc/>
    private protected override void AverageUpdateCore(AveragePlan plan, float alpha) => AverageUpdate((CpuAveragePlan)plan, alpha);

    /// <summary>mean += alpha(w − mean); sq += alpha(w² − sq); deviation = w − mean (new); alpha == 1 copies. One loop per worker's range.</summary>
    private protected override void SwagCollectCore(Tensor current, Tensor mean, Tensor squareMean, Tensor deviation, float alpha)
    {
        float* w = CpuTensor.Ptr(current), m = CpuTensor.Ptr(mean), s = CpuTensor.Ptr(squareMean);
        float* d = deviation.IsNull ? null : CpuTensor.Ptr(deviation);
        nint pw = (nint)w, pm = (nint)m, ps = (nint)s, pd = (nint)d;
        // A deviation column larger than the caches goes out with streaming stores (it is read only when
        // sampling); a small one stays in cache, where ordinary stores are faster.
        bool streaming = current.Length >= StreamingThreshold;
        var step = new CollectStep(alpha);
        Elementwise.Split(current.Length, (start, length) =>
        {
            float* wb = (float*)pw + start, mb = (float*)pm + start, sb = (float*)ps + start;
            if (pd == 0) Elementwise.Update(mb, sb, wb, length, step);
            else Elementwise.Update(mb, sb, wb, (float*)pd + start, length, step, streaming);
        });
    }

    /// <summary>
    /// out = mean + a·sqrt(max(sq − mean², floor))·z₁ + b·Σₖ D[k]·zₖ, z₁ of elements 2j and 2j+1 the
    /// Box-Muller pair of Philox block (j, sample, tag). Block by block: the normals of the block
    /// first (a SIMD batch, <see cref="PhiloxNormals"/>), then the column sum one column at a time
    /// (vectorised, k = 0, 1, ... with one fused multiply-add each, as the kernel sums), then the
    /// combination — the same bits as the kernel.
    /// </summary>
    private protected override void SwagSampleCore(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output)
    {
        float* m = CpuTensor.Ptr(mean), s = CpuTensor.Ptr(squareMean), o = CpuTensor.Ptr(output);
        float* d = spec.Columns == 0 ? null : CpuTensor.Ptr(deviations);
        long n = mean.Length;
        float[] z2 = spec.Columns == 0 ? [] : new ReadOnlySpan<float>(CpuTensor.Ptr(columnNormals), spec.Columns).ToArray();
        nint pm = (nint)m, ps = (nint)s, pd = (nint)d, po = (nint)o;
        uint seedLo = (uint)spec.Seed, seedHi = (uint)(spec.Seed >> 32);
        long pairs = (n + 1) / 2;
        Elementwise.Split(pairs, (startPair, count) =>
        {
            var z = new float[2 * SampleBlock];
            var low = new float[2 * SampleBlock];
            fixed (float* pz = z, pl = low)
                for (long j0 = startPair; j0 < startPair + count; j0 += SampleBlock)
                {
                    long j1 = Math.Min(j0 + SampleBlock, startPair + count);
                    long i0 = 2 * j0, len = Math.Min(2 * j1, n) - i0;
                    PhiloxNormals.Fill(pz, j0, j1 - j0, spec.Sample, DiagonalTag, seedLo, seedHi);
                    new Span<float>(pl, (int)len).Clear();
                    for (int k = 0; k < z2.Length; k++)
                        Elementwise.Map((float*)pd + k * n + i0, pl, pl, len, new MultiplyAdd(z2[k]));
                    Elementwise.Map((float*)pm + i0, (float*)ps + i0, pz, pl, (float*)po + i0, len, new SampleValue(spec.DiagonalScale, spec.LowRankScale, spec.VarianceFloor));
                }
        });
    }

    private protected override void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper) =>
        Elementwise.ParallelUpdate(CpuTensor.Ptr(weights), CpuTensor.Ptr(velocity), CpuTensor.Ptr(gradients), weights.Length, new Sgd(hyper));

    // ---------------------------------------------------------------- optim
    // The fused passes over flat arenas: the SGD step and the SWA/EMA running average. Each is one
    // vectorised sweep (split across workers), the CPU twin of the CUDA kernels in kernels/optim.cu.

    private const long MinChunk = 1 << 16;

    /// <summary>
    /// PyTorch's SGD for one weight w with velocity v and gradient g: g += wd*w; v = m*v + g;
    /// w -= lr * (nesterov ? g + m*v : v). Separate multiplies and adds, as the sgd_step kernel
    /// pins them (__fmul_rn/__fadd_rn), so both round alike.
    /// </summary>
    internal readonly struct Sgd(SgdHyper h) : IStateOperator
    {
        private readonly float _lr = h.LearningRate, _momentum = h.Momentum, _decay = h.WeightDecay;
        private readonly bool _nesterov = h.Nesterov;

        public (float S, float T) Invoke(float w, float v, float g)
        {
            float gi = g + _decay * w;
            float vi = _momentum * v + gi;
            return (w - _lr * (_nesterov ? gi + _momentum * vi : vi), vi);
        }

        public (Vector256<float> S, Vector256<float> T) Invoke(Vector256<float> w, Vector256<float> v, Vector256<float> g)
        {
            var m = Vector256.Create(_momentum);
            var gi = g + Vector256.Create(_decay) * w;
            var vi = m * v + gi;
            return (w - Vector256.Create(_lr) * (_nesterov ? gi + m * vi : vi), vi);
        }

        public (Vector512<float> S, Vector512<float> T) Invoke(Vector512<float> w, Vector512<float> v, Vector512<float> g)
        {
            var m = Vector512.Create(_momentum);
            var gi = g + Vector512.Create(_decay) * w;
            var vi = m * v + gi;
            return (w - Vector512.Create(_lr) * (_nesterov ? gi + m * vi : vi), vi);
        }
    }

    /// <summary>
    /// The twin of the average_update kernel: average += alpha * (current - average) over every
    /// pair of the plan in ONE parallel dispatch. The pairs are laid end to end and the total is
    /// split into one range per worker, so a model kept as hundreds of small buffers costs one
    /// pass, not hundreds of dispatches. Same arithmetic as the kernel (one fused multiply-add per
    /// element; alpha = 1 copies), so both produce the same bits.
    /// </summary>
    internal static void AverageUpdate(CpuAveragePlan plan, float alpha)
    {
        nint[] avg = plan.Averages, cur = plan.Currents;
        long[] start = plan.Starts;
        int n = avg.Length;
        CpuParallel.ForRange(start[n], MinChunk, (s, e) =>
        {
            int i = Array.BinarySearch(start, s);
            if (i < 0) i = ~i - 1;
            while (i < n && start[i + 1] == start[i]) i++; // skip empty pairs that share a start
            for (; i < n && start[i] < e; i++)
            {
                long from = Math.Max(s, start[i]) - start[i], to = Math.Min(e, start[i + 1]) - start[i];
                if (to > from) Update((float*)avg[i] + from, (float*)cur[i] + from, to - from, alpha);
            }
        });
    }

    private static void Update(float* a, float* c, long length, float alpha)
    {
        if (alpha == 1f) Buffer.MemoryCopy(c, a, length * sizeof(float), length * sizeof(float)); // the first model: an exact copy
        else Elementwise.Map(a, c, a, length, new Average(alpha));
    }

    /// <summary>a + alpha * (c - a) with one fused multiply-add, as the average_update kernel (fmaf) rounds it.</summary>
    internal readonly struct Average(float alpha) : IBinaryOperator
    {
        public float Invoke(float a, float c) => MathF.FusedMultiplyAdd(alpha, c - a, a);
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> c) => Vector256.FusedMultiplyAdd(Vector256.Create(alpha), c - a, a);
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> c) => Vector512.FusedMultiplyAdd(Vector512.Create(alpha), c - a, a);
    }

    // ---------------------------------------------------------------- swag
    // CPU twins of kernels/swag.cu: the SWAG collection pass and one weight sample, over flat buffers,
    // split across the workers: the collection one loop over each worker's range (mean, mean of squares
    // and deviation per position), a sample block by block (normals, column sum, combination, each block
    // in L1). Same rounding as the kernels.

    /// <summary>Stream tag of the diagonal draws (SWAG_DIAGONAL_TAG in swag.cu).</summary>
    internal const uint DiagonalTag = 0x53574147u;

    private const long StreamingThreshold = 1 << 21;

    /// <summary>Pairs of elements per block of <see cref="SwagSampleCore"/> (the block's normals and sums stay in L1).</summary>
    private const long SampleBlock = 1024;

    /// <summary>acc + d·z (one fused multiply-add): one column of the low-rank sum.</summary>
    internal readonly struct MultiplyAdd(float z) : IBinaryOperator
    {
        public float Invoke(float d, float acc) => MathF.FusedMultiplyAdd(d, z, acc);
        public Vector256<float> Invoke(Vector256<float> d, Vector256<float> acc) => Vector256.FusedMultiplyAdd(d, Vector256.Create(z), acc);
        public Vector512<float> Invoke(Vector512<float> d, Vector512<float> acc) => Vector512.FusedMultiplyAdd(d, Vector512.Create(z), acc);
    }

    /// <summary>m + (a·(sqrt(max(s − m·m, floor))·z) + b·low), every product and sum rounded on its own (as swag_sample pins them).</summary>
    internal readonly struct SampleValue(float a, float b, float floor) : IQuaternaryOperator
    {
        public float Invoke(float m, float s, float z, float low)
        {
            float v = s - m * m;
            v = v > floor ? v : floor;
            return m + (a * (MathF.Sqrt(v) * z) + b * low);
        }

        public Vector256<float> Invoke(Vector256<float> m, Vector256<float> s, Vector256<float> z, Vector256<float> low)
        {
            var v = s - m * m;
            var f = Vector256.Create(floor);
            v = Vector256.ConditionalSelect(Vector256.GreaterThan(v, f), v, f);
            return m + (Vector256.Create(a) * (Vector256.Sqrt(v) * z) + Vector256.Create(b) * low);
        }

        public Vector512<float> Invoke(Vector512<float> m, Vector512<float> s, Vector512<float> z, Vector512<float> low)
        {
            var v = s - m * m;
            var f = Vector512.Create(floor);
            v = Vector512.ConditionalSelect(Vector512.GreaterThan(v, f), v, f);
            return m + (Vector512.Create(a) * (Vector512.Sqrt(v) * z) + Vector512.Create(b) * low);
        }
    }


    /// <summary>
    /// One collection at one position, as swag_collect rounds it: m' = m + alpha·(w − m) and
    /// s' = s + alpha·(w·w − s) with the product rounded first and one fused multiply-add each
    /// (alpha == 1: m' = w, s' = w·w exactly), and the deviation w − m'.
    /// </summary>
    internal readonly struct CollectStep(float alpha) : IStateOperator, IStateOutputOperator
    {
        private readonly bool _copy = alpha == 1f;

        public (float S, float T) Invoke(float m, float s, float w)
        {
            float w2 = w * w;
            return _copy ? (w, w2) : (MathF.FusedMultiplyAdd(alpha, w - m, m), MathF.FusedMultiplyAdd(alpha, w2 - s, s));
        }

        public (Vector256<float> S, Vector256<float> T) Invoke(Vector256<float> m, Vector256<float> s, Vector256<float> w)
        {
            var w2 = w * w;
            if (_copy) return (w, w2);
            var a = Vector256.Create(alpha);
            return (Vector256.FusedMultiplyAdd(a, w - m, m), Vector256.FusedMultiplyAdd(a, w2 - s, s));
        }

        public (Vector512<float> S, Vector512<float> T) Invoke(Vector512<float> m, Vector512<float> s, Vector512<float> w)
        {
            var w2 = w * w;
            if (_copy) return (w, w2);
            var a = Vector512.Create(alpha);
            return (Vector512.FusedMultiplyAdd(a, w - m, m), Vector512.FusedMultiplyAdd(a, w2 - s, s));
        }

        (float S, float T, float Y) IStateOutputOperator.Invoke(float m, float s, float w)
        {
            var (m1, s1) = Invoke(m, s, w);
            return (m1, s1, w - m1);
        }

        (Vector256<float> S, Vector256<float> T, Vector256<float> Y) IStateOutputOperator.Invoke(Vector256<float> m, Vector256<float> s, Vector256<float> w)
        {
            var (m1, s1) = Invoke(m, s, w);
            return (m1, s1, w - m1);
        }

        (Vector512<float> S, Vector512<float> T, Vector512<float> Y) IStateOutputOperator.Invoke(Vector512<float> m, Vector512<float> s, Vector512<float> w)
        {
            var (m1, s1) = Invoke(m, s, w);
            return (m1, s1, w - m1);
        }
    }
}
