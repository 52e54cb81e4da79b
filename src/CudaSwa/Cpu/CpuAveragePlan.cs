using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

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
