using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Simd;
using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Cpu;

/// <summary>
/// CPU twins of kernels/swag.cu: the SWAG collection pass and one weight sample, over flat
/// buffers, split across the workers; each worker runs the three collection updates block by
/// block so a block stays in L1 between them. Same rounding as the kernels.
/// </summary>
internal static unsafe class CpuSwag
{
    /// <summary>Stream tag of the diagonal draws (SWAG_DIAGONAL_TAG in swag.cu).</summary>
    public const uint DiagonalTag = 0x53574147u;
    /// <summary>Stream tag of the per-column draws of the low-rank term (drawn on the host for every backend).</summary>
    public const uint LowRankTag = 0x5357414Cu;

    private const long Block = 4096;
    private const long StreamingThreshold = 1 << 21;

    /// <summary>mean += alpha(w − mean); sq += alpha(w² − sq); deviation = w − mean (new); alpha == 1 copies.</summary>
    public static void Collect(Tensor current, Tensor mean, Tensor squareMean, Tensor deviation, float alpha)
    {
        float* w = CpuTensor.Ptr(current), m = CpuTensor.Ptr(mean), s = CpuTensor.Ptr(squareMean);
        float* d = deviation.IsNull ? null : CpuTensor.Ptr(deviation);
        nint pw = (nint)w, pm = (nint)m, ps = (nint)s, pd = (nint)d;
        // A deviation column larger than the caches goes out with streaming stores (it is read only when
        // sampling); a small one stays in cache, where ordinary stores are faster.
        bool streaming = current.Length >= StreamingThreshold;
        Elementwise.Split(current.Length, (start, length) =>
        {
            for (long b = start; b < start + length; b += Block)
            {
                long n = Math.Min(Block, start + length - b);
                float* wb = (float*)pw + b, mb = (float*)pm + b, sb = (float*)ps + b;
                if (alpha == 1f)
                {
                    Buffer.MemoryCopy(wb, mb, n * sizeof(float), n * sizeof(float));
                    Elementwise.Map(wb, sb, n, new Square());
                }
                else
                {
                    Elementwise.Map(mb, wb, mb, n, new CpuOptim.Average(alpha));
                    Elementwise.Map(sb, wb, sb, n, new SquareAverage(alpha));
                }
                if (pd == 0) continue;
                if (streaming) Elementwise.MapStreaming(wb, mb, (float*)pd + b, n, new Difference());
                else Elementwise.Map(wb, mb, (float*)pd + b, n, new Difference());
            }
        });
    }

    /// <summary>
    /// out = mean + a·sqrt(max(sq − mean², floor))·z₁ + b·Σₖ D[k]·zₖ, z₁ of elements 2j and 2j+1 the
    /// Box-Muller pair of Philox block (j, sample, tag). Block by block: the normals of the block
    /// first, then the column sum one column at a time (vectorised, k = 0, 1, ... with one fused
    /// multiply-add each, as the kernel sums), then the combination — the same bits as the kernel.
    /// </summary>
    public static void Sample(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output)
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
                    for (long j = j0; j < j1; j++)
                    {
                        var (a, b) = Philox.NormalPair(Philox.Generate((uint)j, (uint)(j >> 32), spec.Sample, DiagonalTag, seedLo, seedHi));
                        pz[2 * (j - j0)] = a;
                        pz[2 * (j - j0) + 1] = b;
                    }
                    new Span<float>(pl, (int)len).Clear();
                    for (int k = 0; k < z2.Length; k++)
                        Elementwise.Map((float*)pd + k * n + i0, pl, pl, len, new MultiplyAdd(z2[k]));
                    Elementwise.Map((float*)pm + i0, (float*)ps + i0, pz, pl, (float*)po + i0, len, new SampleValue(spec.DiagonalScale, spec.LowRankScale, spec.VarianceFloor));
                }
        });
    }

    /// <summary>Pairs of elements per block of <see cref="Sample"/> (the block's normals and sums stay in L1).</summary>
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

    /// <summary>The normals that weight the deviation columns of one sample (the same on every backend).</summary>
    public static void ColumnNormals(Span<float> destination, ulong seed, uint sample)
    {
        for (int k = 0; k < destination.Length; k++)
            destination[k] = Philox.Normal(Philox.Generate((uint)k, 0, sample, LowRankTag, (uint)seed, (uint)(seed >> 32)));
    }

    /// <summary>w·w (the first collection's mean of squares).</summary>
    internal readonly struct Square : IUnaryOperator
    {
        public float Invoke(float w) => w * w;
        public Vector256<float> Invoke(Vector256<float> w) => w * w;
        public Vector512<float> Invoke(Vector512<float> w) => w * w;
    }

    /// <summary>s + alpha·(w·w − s) with the product rounded first and one fused multiply-add, as swag_collect rounds it.</summary>
    internal readonly struct SquareAverage(float alpha) : IBinaryOperator
    {
        public float Invoke(float s, float w) => MathF.FusedMultiplyAdd(alpha, w * w - s, s);
        public Vector256<float> Invoke(Vector256<float> s, Vector256<float> w) => Vector256.FusedMultiplyAdd(Vector256.Create(alpha), w * w - s, s);
        public Vector512<float> Invoke(Vector512<float> s, Vector512<float> w) => Vector512.FusedMultiplyAdd(Vector512.Create(alpha), w * w - s, s);
    }

    /// <summary>a − b.</summary>
    internal readonly struct Difference : IBinaryOperator
    {
        public float Invoke(float a, float b) => a - b;
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a - b;
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => a - b;
    }
}
