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

    /// <summary>
    /// The twin of the average_update kernel: average += alpha * (current - average) over every
    /// pair of the plan in ONE parallel dispatch. The pairs are laid end to end and the total is
    /// split into one range per worker, so a model kept as hundreds of small buffers costs one
    /// pass, not hundreds of dispatches. Same arithmetic as the kernel (one fused multiply-add per
    /// element; alpha = 1 copies), so both produce the same bits.
    /// </summary>
    public static void AverageUpdate(CpuAveragePlan plan, float alpha)
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
}

/// <summary>The CPU form of a prepared average: each pair's addresses and its first element in the concatenation.</summary>
internal sealed unsafe class CpuAveragePlan : AveragePlan
{
    public CpuAveragePlan(Backend backend, AveragePair[] pairs) : base(backend, pairs)
    {
        int n = pairs.Length;
        Averages = new nint[n];
        Currents = new nint[n];
        Starts = new long[n + 1];
        for (int i = 0; i < n; i++)
        {
            Averages[i] = (nint)CpuTensor.Ptr(pairs[i].Average);
            Currents[i] = (nint)CpuTensor.Ptr(pairs[i].Current);
            Starts[i + 1] = Starts[i] + pairs[i].Average.Length;
        }
    }

    public nint[] Averages { get; }
    public nint[] Currents { get; }

    /// <summary>Starts[i] is pair i's first element in the concatenation; Starts[n] the total.</summary>
    public long[] Starts { get; }
}
