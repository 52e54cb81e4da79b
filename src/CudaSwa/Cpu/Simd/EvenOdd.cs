using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CudaSwa.Cpu.Simd;

/// <summary>
/// Splits rows of floats into their even and odd columns, 32 at a time, with AVX-512's two-source
/// permute: the polyphase components of stride-2 convolutions and of Winograd F(2x2) tiles.
/// </summary>
internal static unsafe class EvenOdd
{
    public static readonly Vector512<int> EvenIndices = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    public static readonly Vector512<int> OddIndices = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);

    /// <summary>Whether rows of this width split a vector at a time: whole blocks of 32, or one row of 16.</summary>
    public static bool Supported(int width) => Avx512F.IsSupported && (width == 16 || width % 32 == 0);

    /// <summary>Columns x0, x0 + 2, … and x0 + 1, x0 + 3, … of a row: 16 each from 32 floats, or 8 each (then zeros) when only 16 remain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Split(float* row, int remaining, out Vector512<float> even, out Vector512<float> odd)
    {
        var lo = Vector512.Load(row);
        var hi = remaining >= 32 ? Vector512.Load(row + 16) : Vector512<float>.Zero;
        even = Avx512F.PermuteVar16x32x2(lo, EvenIndices, hi);
        odd = Avx512F.PermuteVar16x32x2(lo, OddIndices, hi);
    }
}
