using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>
/// The fused passes over flat arenas: the SGD step and the SWA/EMA running average. Each is one
/// vectorised sweep (split across workers), the CPU twin of the CUDA kernels in kernels/optim.cu.
/// </summary>
internal static unsafe class CpuOptim
{
    private const long MinChunk = 1 << 16;

    public static void SgdStep(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper h) =>
        Elementwise.ParallelUpdate(CpuTensor.Ptr(weights), CpuTensor.Ptr(velocity), CpuTensor.Ptr(gradients), weights.Length, new Sgd(h));

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
