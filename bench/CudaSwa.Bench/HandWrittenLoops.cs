using System.Runtime.Intrinsics;
using CudaSwa.Tensors;

namespace CudaSwa.Bench;

/// <summary>
/// The hand-written Vector512/Vector256/scalar loops the elementwise driver replaced (taken
/// verbatim from the engine before the change, minus the worker split), kept here only as the
/// baseline of <see cref="ElementwiseBench"/>.
/// </summary>
internal static unsafe class HandWrittenLoops
{
    public static void ReluBackward(float* ys, float* dys, float* dxs, long n, bool accumulate)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var mask = Vector512.GreaterThan(Vector512.Load(ys + i), Vector512<float>.Zero);
                var g = Vector512.ConditionalSelect(mask, Vector512.Load(dys + i), Vector512<float>.Zero);
                if (accumulate) g += Vector512.Load(dxs + i);
                g.Store(dxs + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                var mask = Vector256.GreaterThan(Vector256.Load(ys + i), Vector256<float>.Zero);
                var g = Vector256.ConditionalSelect(mask, Vector256.Load(dys + i), Vector256<float>.Zero);
                if (accumulate) g += Vector256.Load(dxs + i);
                g.Store(dxs + i);
            }
        }
        for (; i < n; i++)
        {
            float g = ys[i] > 0 ? dys[i] : 0f;
            dxs[i] = accumulate ? dxs[i] + g : g;
        }
    }

    public static void SgdStep(float* w, float* g, float* v, long n, SgdHyper h)
    {
        float lr = h.LearningRate, mom = h.Momentum, wd = h.WeightDecay;
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vlr = Vector256.Create(lr); var vm = Vector256.Create(mom); var vwd = Vector256.Create(wd);
            for (; i + 8 <= n; i += 8)
            {
                var wi = Vector256.Load(w + i);
                var gi = Vector256.Load(g + i) + vwd * wi;
                var vi = vm * Vector256.Load(v + i) + gi;
                vi.Store(v + i);
                var step = h.Nesterov ? gi + vm * vi : vi;
                (wi - vlr * step).Store(w + i);
            }
        }
        for (; i < n; i++)
        {
            float gi = g[i] + wd * w[i];
            float vi = mom * v[i] + gi;
            v[i] = vi;
            w[i] -= lr * (h.Nesterov ? gi + mom * vi : vi);
        }
    }

    public static void AverageUpdate(float* a, float* c, long length, float alpha)
    {
        if (alpha == 1f)
        {
            Buffer.MemoryCopy(c, a, length * sizeof(float), length * sizeof(float));
            return;
        }
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i + 16 <= length; i += 16)
            {
                var ai = Vector512.Load(a + i);
                Vector512.FusedMultiplyAdd(va, Vector512.Load(c + i) - ai, ai).Store(a + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i + 8 <= length; i += 8)
            {
                var ai = Vector256.Load(a + i);
                Vector256.FusedMultiplyAdd(va, Vector256.Load(c + i) - ai, ai).Store(a + i);
            }
        }
        for (; i < length; i++) a[i] = MathF.FusedMultiplyAdd(alpha, c[i] - a[i], a[i]);
    }

    /// <summary>y = x * scale + shift (not fused, matching the CUDA twin's separate multiply and add).</summary>
    public static void ScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> y)
    {
        int i = 0;
        ref float xr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
        if (Vector512.IsHardwareAccelerated)
        {
            var vs = Vector512.Create(scale);
            var vb = Vector512.Create(shift);
            for (; i + 16 <= x.Length; i += 16)
                (Vector512.LoadUnsafe(ref xr, (nuint)i) * vs + vb).StoreUnsafe(ref yr, (nuint)i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(shift);
            for (; i + 8 <= x.Length; i += 8)
                (Vector256.LoadUnsafe(ref xr, (nuint)i) * vs + vb).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < x.Length; i++) y[i] = x[i] * scale + shift;
    }

    /// <summary>(sum of (x - k), sum of (x - k)^2) over a row, in float vectors, returned in double.</summary>
    public static (double Sum, double SumSquares) ShiftedMoments(float* x, int length, float k)
    {
        int i = 0;
        double s1 = 0, s2 = 0;
        if (Vector512.IsHardwareAccelerated && length >= 16)
        {
            var vk = Vector512.Create(k);
            var a = Vector512<float>.Zero;
            var b = Vector512<float>.Zero;
            for (; i + 16 <= length; i += 16)
            {
                var d = Vector512.Load(x + i) - vk;
                a += d;
                b = Vector512.FusedMultiplyAdd(d, d, b);
            }
            s1 = Vector512.Sum(a);
            s2 = Vector512.Sum(b);
        }
        for (; i < length; i++)
        {
            double d = x[i] - k;
            s1 += d;
            s2 += d * d;
        }
        return (s1, s2);
    }

    /// <summary>(sum of dy, sum of dy * x) over a row in one read of each.</summary>
    public static (double Sum, double Dot) SumAndDot(float* dy, float* x, int length)
    {
        int i = 0;
        double s = 0, d = 0;
        if (Vector512.IsHardwareAccelerated && length >= 16)
        {
            var a = Vector512<float>.Zero;
            var b = Vector512<float>.Zero;
            for (; i + 16 <= length; i += 16)
            {
                var g = Vector512.Load(dy + i);
                a += g;
                b = Vector512.FusedMultiplyAdd(g, Vector512.Load(x + i), b);
            }
            s = Vector512.Sum(a);
            d = Vector512.Sum(b);
        }
        for (; i < length; i++)
        {
            s += dy[i];
            d += (double)dy[i] * x[i];
        }
        return (s, d);
    }

    /// <summary>dx = k1*dy + k2*x + k3 (or dx += ...), vectorised.</summary>
    public static void Affine2(float* dy, float* x, float* dx, int length, float k1, float k2, float k3, bool accumulate)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var v1 = Vector512.Create(k1);
            var v2 = Vector512.Create(k2);
            var v3 = Vector512.Create(k3);
            for (; i + 16 <= length; i += 16)
            {
                var r = v1 * Vector512.Load(dy + i) + v2 * Vector512.Load(x + i) + v3;
                if (accumulate) r += Vector512.Load(dx + i);
                r.Store(dx + i);
            }
        }
        for (; i < length; i++)
        {
            float r = k1 * dy[i] + k2 * x[i] + k3;
            dx[i] = accumulate ? dx[i] + r : r;
        }
    }
}
