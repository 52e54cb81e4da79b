using System.Runtime.Intrinsics;

namespace CudaSwa.Cpu.Simd;

/// <summary>The vector width an elementwise pass runs at.</summary>
internal enum SimdWidth
{
    /// <summary>One float at a time.</summary>
    Scalar = 1,
    /// <summary>Eight floats (AVX2).</summary>
    Vector256 = 8,
    /// <summary>Sixteen floats (AVX-512).</summary>
    Vector512 = 16,
}

/// <summary>
/// The widest vector width the machine accelerates, which every elementwise pass uses (one width
/// per pass: the main loop at that width, then a scalar tail, never a mix). Tests lower it with
/// <see cref="Limit"/> to run each width's code on one machine.
/// </summary>
internal static class Simd
{
    public static readonly SimdWidth Widest =
        Vector512.IsHardwareAccelerated ? SimdWidth.Vector512 : Vector256.IsHardwareAccelerated ? SimdWidth.Vector256 : SimdWidth.Scalar;

    private static SimdWidth s_width = Widest;

    /// <summary>The width passes run at now: <see cref="Widest"/> unless limited.</summary>
    public static SimdWidth Width => s_width;

    /// <summary>Every width this machine can run (scalar always), narrowest first.</summary>
    public static IEnumerable<SimdWidth> Supported =>
        new[] { SimdWidth.Scalar, SimdWidth.Vector256, SimdWidth.Vector512 }.Where(w => w <= Widest);

    /// <summary>
    /// Runs every pass at most at <paramref name="width"/> until the returned scope is disposed
    /// (process-wide: for tests that compare widths, which must not run beside other CPU work).
    /// </summary>
    public static IDisposable Limit(SimdWidth width)
    {
        if (width > Widest) throw new ArgumentOutOfRangeException(nameof(width), $"This machine runs at most {Widest}; {width} was asked for.");
        var previous = s_width;
        s_width = width;
        return new Restore(previous);
    }

    private sealed class Restore(SimdWidth previous) : IDisposable
    {
        public void Dispose() => s_width = previous;
    }
}
