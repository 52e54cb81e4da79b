using BenchmarkDotNet.Attributes;
using CudaSwa.Cpu;
using CudaSwa.Cpu.Simd;
using CudaSwa.Tensors;

namespace CudaSwa.Bench;

/// <summary>
/// The elementwise driver's operator-struct forms against the hand-written loops they replaced
/// (<see cref="HandWrittenLoops"/>), one thread, same buffers, at a size that stays in L2 and one
/// that streams from memory. Each invocation repeats the pass so it lasts about a millisecond.
/// Pairs: ReLU backward (accumulating), SGD step, SWA update, BN apply (scale-shift), BN input
/// gradient (accumulating), BN moments.
/// </summary>
public unsafe class ElementwiseBench : IWork
{
    [Params(65_536, 4_194_304)] public int Length { get; set; } = 65_536;

    private float* _a, _b, _c, _d;
    private int Repeats => Math.Max(1, (1 << 22) / Length);

    [GlobalSetup]
    public void Setup()
    {
        var rnd = new Random(1);
        float* New()
        {
            var p = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)Length * 4, 64);
            for (int i = 0; i < Length; i++) p[i] = (float)(rnd.NextDouble() * 2 - 1);
            return p;
        }
        _a = New(); _b = New(); _c = New(); _d = New();
        // Steady state, as in training: run every form often enough for tiered compilation to
        // reach its optimised code (a few invocations of one iteration each would time tier-0).
        var all = GetType().GetMethods().Where(m => m.GetCustomAttributes(typeof(BenchmarkAttribute), false).Length > 0).ToArray();
        for (int round = 0; round < 3; round++)
        {
            for (int k = 0; k < 60; k++)
                foreach (var m in all) m.Invoke(this, null);
            Thread.Sleep(300);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_a);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_b);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_c);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_d);
    }

    /// <summary>Bytes each pass reads and writes, per method.</summary>
    public (double Amount, string Unit) Work(string method)
    {
        int streams = method switch
        {
            "ReluBackwardHandWritten" or "ReluBackwardOperator" => 4,
            "SgdHandWritten" or "SgdOperator" => 5,
            "AverageHandWritten" or "AverageOperator" => 3,
            "ScaleShiftHandWritten" or "ScaleShiftOperator" => 2,
            "InputGradientHandWritten" or "InputGradientOperator" => 4,
            _ => 1, // moments
        };
        return ((double)streams * Length * 4 * Repeats, "GB/s");
    }

    private static readonly SgdHyper Hyper = new(0.01f, 0.9f, 5e-4f, false);

    [Benchmark] public void ReluBackwardHandWritten() { for (int r = 0; r < Repeats; r++) HandWrittenLoops.ReluBackward(_a, _b, _c, Length, true); }
    [Benchmark] public void ReluBackwardOperator() { for (int r = 0; r < Repeats; r++) Elementwise.MapInto(_a, _b, _c, Length, new CpuBackend.ReluGradient(), true); }

    [Benchmark] public void SgdHandWritten() { for (int r = 0; r < Repeats; r++) HandWrittenLoops.SgdStep(_a, _b, _c, Length, Hyper); }
    [Benchmark] public void SgdOperator() { for (int r = 0; r < Repeats; r++) Elementwise.Update(_a, _c, _b, Length, new CpuBackend.Sgd(Hyper)); }

    [Benchmark] public void AverageHandWritten() { for (int r = 0; r < Repeats; r++) HandWrittenLoops.AverageUpdate(_a, _b, Length, 0.3f); }
    [Benchmark] public void AverageOperator() { for (int r = 0; r < Repeats; r++) Elementwise.Map(_a, _b, _a, Length, new CpuBackend.Average(0.3f)); }

    [Benchmark] public void ScaleShiftHandWritten() { for (int r = 0; r < Repeats; r++) HandWrittenLoops.ScaleShift(new ReadOnlySpan<float>(_a, Length), 1.1f, -0.2f, new Span<float>(_d, Length)); }
    [Benchmark] public void ScaleShiftOperator() { for (int r = 0; r < Repeats; r++) Elementwise.Map(_a, _d, Length, new CpuBackend.ScaleShift(1.1f, -0.2f)); }

    [Benchmark] public void InputGradientHandWritten() { for (int r = 0; r < Repeats; r++) HandWrittenLoops.Affine2(_a, _b, _d, Length, 0.5f, -0.25f, 0.125f, true); }
    [Benchmark] public void InputGradientOperator() { for (int r = 0; r < Repeats; r++) Elementwise.MapInto(_a, _b, _d, Length, new CpuBackend.InputGradient(0.5f, -0.25f, 0.125f), true); }

    [Benchmark]
    public double MomentsHandWritten()
    {
        double s = 0;
        for (int r = 0; r < Repeats; r++) s += HandWrittenLoops.ShiftedMoments(_a, Length, 0.1f).Sum;
        return s;
    }

    [Benchmark]
    public double MomentsOperator()
    {
        double s = 0;
        for (int r = 0; r < Repeats; r++) s += Moments.Sum(_a, Length, new CpuBackend.ShiftedMoments(0.1f)).S;
        return s;
    }
}
