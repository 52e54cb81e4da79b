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
    /// out = mean + a·sqrt(max(sq − mean², floor))·z₁ + b·Σₖ D[k]·zₖ, z₁ from Philox (seed, sample, element).
    /// </summary>
    public static void Sample(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output)
    {
        float* m = CpuTensor.Ptr(mean), s = CpuTensor.Ptr(squareMean), o = CpuTensor.Ptr(output);
        float* d = spec.Columns == 0 ? null : CpuTensor.Ptr(deviations);
        long n = mean.Length;
        float[] z2 = spec.Columns == 0 ? [] : new ReadOnlySpan<float>(CpuTensor.Ptr(columnNormals), spec.Columns).ToArray();
        nint pm = (nint)m, ps = (nint)s, pd = (nint)d, po = (nint)o;
        uint seedLo = (uint)spec.Seed, seedHi = (uint)(spec.Seed >> 32);
        Elementwise.Split(n, (start, length) =>
        {
            float* mm = (float*)pm, ss = (float*)ps, dd = (float*)pd, oo = (float*)po;
            for (long i = start; i < start + length; i++)
            {
                float mi = mm[i];
                float v = ss[i] - mi * mi;
                v = v > spec.VarianceFloor ? v : spec.VarianceFloor;
                float z = Philox.Normal(Philox.Generate((uint)i, (uint)(i >> 32), spec.Sample, DiagonalTag, seedLo, seedHi));
                float low = 0f;
                for (int k = 0; k < z2.Length; k++) low = MathF.FusedMultiplyAdd(dd[k * n + i], z2[k], low);
                oo[i] = mi + (spec.DiagonalScale * (MathF.Sqrt(v) * z) + spec.LowRankScale * low);
            }
        });
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
