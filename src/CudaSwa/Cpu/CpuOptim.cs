using System.Runtime.Intrinsics;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>
/// The fused passes over flat arenas: the SGD step and the SWA/EMA running average. Each is one
/// vectorised sweep (split across workers), the CPU twin of the CUDA kernels in kernels/optim.cu.
/// </summary>
internal static unsafe class CpuOptim
{
    private const long MinChunk = 1 << 16;

    public static void SgdStep(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper h)
    {
        nint pw = (nint)CpuTensor.Ptr(weights), pg = (nint)CpuTensor.Ptr(gradients), pv = (nint)CpuTensor.Ptr(velocity);
        CpuParallel.ForRange(weights.Length, MinChunk, (s, e) =>
        {
            float* w = (float*)pw, g = (float*)pg, v = (float*)pv;
            float lr = h.LearningRate, mom = h.Momentum, wd = h.WeightDecay;
            long i = s;
            if (Vector256.IsHardwareAccelerated)
            {
                var vlr = Vector256.Create(lr); var vm = Vector256.Create(mom); var vwd = Vector256.Create(wd);
                for (; i + 8 <= e; i += 8)
                {
                    var wi = Vector256.Load(w + i);
                    var gi = Vector256.Load(g + i) + vwd * wi;
                    var vi = vm * Vector256.Load(v + i) + gi;
                    vi.Store(v + i);
                    var step = h.Nesterov ? gi + vm * vi : vi;
                    (wi - vlr * step).Store(w + i);
                }
            }
            for (; i < e; i++)
            {
                float gi = g[i] + wd * w[i];
                float vi = mom * v[i] + gi;
                v[i] = vi;
                w[i] -= lr * (h.Nesterov ? gi + mom * vi : vi);
            }
        });
    }

    public static void AverageUpdate(ReadOnlySpan<AveragePair> pairs, float alpha)
    {
        foreach (var pair in pairs)
        {
            nint pa = (nint)CpuTensor.Ptr(pair.Average), pc = (nint)CpuTensor.Ptr(pair.Current);
            if (alpha == 1f)
            {
                CpuPointwise.Accumulate(pair.Current, pair.Average, accumulate: false);
                continue;
            }
            CpuParallel.ForRange(pair.Average.Length, MinChunk, (s, e) =>
            {
                float* a = (float*)pa, c = (float*)pc;
                long i = s;
                if (Vector512.IsHardwareAccelerated)
                {
                    var va = Vector512.Create(alpha);
                    for (; i + 16 <= e; i += 16)
                    {
                        var ai = Vector512.Load(a + i);
                        Vector512.FusedMultiplyAdd(va, Vector512.Load(c + i) - ai, ai).Store(a + i);
                    }
                }
                else if (Vector256.IsHardwareAccelerated)
                {
                    var va = Vector256.Create(alpha);
                    for (; i + 8 <= e; i += 8)
                    {
                        var ai = Vector256.Load(a + i);
                        Vector256.FusedMultiplyAdd(va, Vector256.Load(c + i) - ai, ai).Store(a + i);
                    }
                }
                for (; i < e; i++) a[i] = MathF.FusedMultiplyAdd(alpha, c[i] - a[i], a[i]);
            });
        }
    }
}
