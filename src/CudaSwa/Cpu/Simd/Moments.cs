using System.Runtime.Intrinsics;

namespace CudaSwa.Cpu.Simd;

/// <summary>
/// The reduction driver: two sums over a run of one to three input streams at the current
/// <see cref="Simd.Width"/>. Lanes accumulate in float vectors, are summed horizontally, and the
/// scalar tail adds in double; the result is returned in double. Runs are short (one H*W plane of
/// a channel) and callers add runs up in double.
/// </summary>
internal static unsafe class Moments
{
    public static (double S, double T) Sum<TOp>(float* a, int n, TOp op) where TOp : struct, IUnaryMoments
    {
        int i = 0;
        double s = 0, t = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512 when n >= 16:
            {
                Vector512<float> vs = default, vt = default;
                for (; i + 16 <= n; i += 16) op.Accumulate(ref vs, ref vt, Vector512.Load(a + i));
                (s, t) = (Vector512.Sum(vs), Vector512.Sum(vt));
                break;
            }
            case SimdWidth.Vector256 when n >= 8:
            {
                Vector256<float> vs = default, vt = default;
                for (; i + 8 <= n; i += 8) op.Accumulate(ref vs, ref vt, Vector256.Load(a + i));
                (s, t) = (Vector256.Sum(vs), Vector256.Sum(vt));
                break;
            }
        }
        for (; i < n; i++) op.Accumulate(ref s, ref t, a[i]);
        return (s, t);
    }

    public static (double S, double T) Sum<TOp>(float* a, float* b, int n, TOp op) where TOp : struct, IBinaryMoments
    {
        int i = 0;
        double s = 0, t = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512 when n >= 16:
            {
                Vector512<float> vs = default, vt = default;
                for (; i + 16 <= n; i += 16) op.Accumulate(ref vs, ref vt, Vector512.Load(a + i), Vector512.Load(b + i));
                (s, t) = (Vector512.Sum(vs), Vector512.Sum(vt));
                break;
            }
            case SimdWidth.Vector256 when n >= 8:
            {
                Vector256<float> vs = default, vt = default;
                for (; i + 8 <= n; i += 8) op.Accumulate(ref vs, ref vt, Vector256.Load(a + i), Vector256.Load(b + i));
                (s, t) = (Vector256.Sum(vs), Vector256.Sum(vt));
                break;
            }
        }
        for (; i < n; i++) op.Accumulate(ref s, ref t, a[i], b[i]);
        return (s, t);
    }

    public static (double S, double T) Sum<TOp>(float* a, float* b, float* c, int n, TOp op) where TOp : struct, ITernaryMoments
    {
        int i = 0;
        double s = 0, t = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512 when n >= 16:
            {
                Vector512<float> vs = default, vt = default;
                for (; i + 16 <= n; i += 16) op.Accumulate(ref vs, ref vt, Vector512.Load(a + i), Vector512.Load(b + i), Vector512.Load(c + i));
                (s, t) = (Vector512.Sum(vs), Vector512.Sum(vt));
                break;
            }
            case SimdWidth.Vector256 when n >= 8:
            {
                Vector256<float> vs = default, vt = default;
                for (; i + 8 <= n; i += 8) op.Accumulate(ref vs, ref vt, Vector256.Load(a + i), Vector256.Load(b + i), Vector256.Load(c + i));
                (s, t) = (Vector256.Sum(vs), Vector256.Sum(vt));
                break;
            }
        }
        for (; i < n; i++) op.Accumulate(ref s, ref t, a[i], b[i], c[i]);
        return (s, t);
    }
}
