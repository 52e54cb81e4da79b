using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Workers;

namespace CudaSwa.Cpu.Simd;

/// <summary>
/// The machine's measured float32 FMA ceiling: every worker runs twelve independent chains of
/// vector fused multiply-adds (more chains than latency x issue width, so no chain waits on
/// itself) with nothing loaded or stored, at 512 and at 256 bits; the faster width counts.
/// It is the roofline every convolution figure is read against.
/// </summary>
internal static class FmaPeak
{
    /// <summary>GFLOP/s (2 per FMA lane) on all workers, the better of the two widths, each the best of five runs of about <paramref name="seconds"/>/10.</summary>
    public static (double Gflops, string Width) Measure(double seconds = 1.5)
    {
        double best = 0;
        string width = "scalar";
        if (Vector512.IsHardwareAccelerated)
        {
            double g = Best(seconds / 10, Chains512, 16);
            if (g > best) (best, width) = (g, "Vector512");
        }
        if (Vector256.IsHardwareAccelerated)
        {
            double g = Best(seconds / 10, Chains256, 8);
            if (g > best) (best, width) = (g, "Vector256");
        }
        return (best, width);
    }

    private static double Best(double seconds, Func<long, float, float> chains, int lanes)
    {
        int workers = CpuParallel.Workers;
        // Calibrate the iteration count on one worker, then time all workers together.
        long iterations = 1 << 16;
        var sw = Stopwatch.StartNew();
        chains(iterations, 1f);
        while (sw.Elapsed.TotalSeconds < seconds / 4 && iterations < 1L << 40)
        {
            iterations *= 2;
            sw.Restart();
            chains(iterations, 1f);
        }
        double best = 0;
        var sink = new float[workers];
        CpuParallel.For(workers, w => sink[w] = chains(1024, 1f));   // the workers awake before the clock starts
        for (int rep = 0; rep < 5; rep++)
        {
            sw.Restart();
            CpuParallel.For(workers, w => sink[w] = chains(iterations, 1f + w));
            double flops = (double)workers * iterations * 12 * lanes * 2;
            best = Math.Max(best, flops / sw.Elapsed.TotalSeconds / 1e9);
        }
        GC.KeepAlive(sink);
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains512(long iterations, float seed)
    {
        var m = Vector512.Create(0.999999f);
        var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(seed), c1 = c0 + a, c2 = c1 + a, c3 = c2 + a, c4 = c3 + a, c5 = c4 + a;
        Vector512<float> c6 = c5 + a, c7 = c6 + a, c8 = c7 + a, c9 = c8 + a, c10 = c9 + a, c11 = c10 + a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a);
            c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
            c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
            c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
            c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a);
            c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
        return Vector512.Sum(s);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains256(long iterations, float seed)
    {
        var m = Vector256.Create(0.999999f);
        var a = Vector256.Create(1e-7f);
        Vector256<float> c0 = Vector256.Create(seed), c1 = c0 + a, c2 = c1 + a, c3 = c2 + a, c4 = c3 + a, c5 = c4 + a;
        Vector256<float> c6 = c5 + a, c7 = c6 + a, c8 = c7 + a, c9 = c8 + a, c10 = c9 + a, c11 = c10 + a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, m, a); c1 = Vector256.FusedMultiplyAdd(c1, m, a);
            c2 = Vector256.FusedMultiplyAdd(c2, m, a); c3 = Vector256.FusedMultiplyAdd(c3, m, a);
            c4 = Vector256.FusedMultiplyAdd(c4, m, a); c5 = Vector256.FusedMultiplyAdd(c5, m, a);
            c6 = Vector256.FusedMultiplyAdd(c6, m, a); c7 = Vector256.FusedMultiplyAdd(c7, m, a);
            c8 = Vector256.FusedMultiplyAdd(c8, m, a); c9 = Vector256.FusedMultiplyAdd(c9, m, a);
            c10 = Vector256.FusedMultiplyAdd(c10, m, a); c11 = Vector256.FusedMultiplyAdd(c11, m, a);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
        return Vector256.Sum(s);
    }
}
