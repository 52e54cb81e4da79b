using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using CudaSwa.Util;
using static CudaSwa.Util.NormalConstants;

namespace CudaSwa.Cpu.Simd;

/// <summary>
/// Normal draws of a Philox stream in batches: the pairs of blocks first, first+1, ... at the
/// current <see cref="Simd.Width"/>, 16 or 8 blocks per step (Philox's 32-bit multiply-high from
/// two widening multiplies, the Box-Muller arithmetic of <see cref="Philox.NormalPair"/> lane by
/// lane in the same order), then a scalar tail. Every width gives the bits of the scalar code.
/// </summary>
internal static unsafe class PhiloxNormals
{
    /// <summary>
    /// z[2p], z[2p+1] = <see cref="Philox.NormalPair"/> of the block with counter
    /// (first + p, c2, c3) and key (k0, k1), for p in [0, pairs); the counter's first two words
    /// are the low and high halves of first + p.
    /// </summary>
    public static void Fill(float* z, long first, long pairs, uint c2, uint c3, uint k0, uint k1)
    {
        long p = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512 when Avx512F.IsSupported:
                for (; p + 16 <= pairs && SameHighWord(first + p, 16); p += 16)
                    Pairs512(z + 2 * p, first + p, c2, c3, k0, k1);
                break;
            case SimdWidth.Vector256 when Avx2.IsSupported:
                for (; p + 8 <= pairs && SameHighWord(first + p, 8); p += 8)
                    Pairs256(z + 2 * p, first + p, c2, c3, k0, k1);
                break;
        }
        for (; p < pairs; p++)
        {
            long j = first + p;
            var (a, b) = Philox.NormalPair(Philox.Generate((uint)j, (uint)(j >> 32), c2, c3, k0, k1));
            z[2 * p] = a;
            z[2 * p + 1] = b;
        }
    }

    /// <summary>Whether counters j .. j+lanes−1 share their high word (the vector paths keep it uniform).</summary>
    private static bool SameHighWord(long j, int lanes) => (j >> 32) == ((j + lanes - 1) >> 32);

    // ------------------------------------------------------------------ 16 blocks (AVX-512)

    private static readonly Vector512<int> Interleave512Low = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    private static readonly Vector512<int> Interleave512High = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pairs512(float* z, long j, uint c2, uint c3, uint k0, uint k1)
    {
        var x0 = Vector512.Create((uint)j) + Vector512<uint>.Indices;
        var x1 = Vector512.Create((uint)(j >> 32));
        var x2 = Vector512.Create(c2);
        var x3 = Vector512.Create(c3);
        for (int round = 0; round < 10; round++)
        {
            var (hi0, lo0) = MultiplyHighLow(0xD2511F53u, x0);
            var (hi1, lo1) = MultiplyHighLow(0xCD9E8D57u, x2);
            var n0 = hi1 ^ x1 ^ Vector512.Create(k0);
            var n2 = hi0 ^ x3 ^ Vector512.Create(k1);
            x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
            k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
        }
        var (z0, z1) = BoxMuller(x0, x1);
        Avx512F.PermuteVar16x32x2(z0, Interleave512Low, z1).Store(z);
        Avx512F.PermuteVar16x32x2(z0, Interleave512High, z1).Store(z + 16);
    }

    /// <summary>The high and low words of m·x per lane (the high from two widening multiplies of the even and odd lanes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<uint> High, Vector512<uint> Low) MultiplyHighLow(uint m, Vector512<uint> x)
    {
        var mv = Vector512.Create(m);
        var even = Avx512F.Multiply(x, mv);
        var odd = Avx512F.Multiply(Vector512.ShiftRightLogical(x.AsUInt64(), 32).AsUInt32(), mv);
        var high = Vector512.ConditionalSelect(Vector512.Create(0xFFFFFFFF00000000UL).AsUInt32(), odd.AsUInt32(), Vector512.ShiftRightLogical(even, 32).AsUInt32());
        return (high, x * mv);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float> Z0, Vector512<float> Z1) BoxMuller(Vector512<uint> x0, Vector512<uint> x1)
    {
        var bits = Vector512.ConvertToSingle(Vector512.ShiftRightLogical(x0, 8).AsInt32() + Vector512<int>.One).AsInt32();
        var e = Vector512.ShiftRightLogical(bits, 23) - Vector512.Create(127);
        var m = ((bits & Vector512.Create(0x7FFFFF)) | Vector512.Create(0x3F800000)).AsSingle();
        var fold = Vector512.GreaterThan(m, Vector512.Create(Sqrt2));
        m = Vector512.ConditionalSelect(fold, m * Vector512.Create(0.5f), m);
        e -= fold.AsInt32();
        var f = m - Vector512<float>.One;
        var s = f / (f + Vector512.Create(2f));
        var s2 = s * s;
        var p = Vector512.FusedMultiplyAdd(s2, Vector512.Create(L9), Vector512.Create(L7));
        p = Vector512.FusedMultiplyAdd(s2, p, Vector512.Create(L5));
        p = Vector512.FusedMultiplyAdd(s2, p, Vector512.Create(L3));
        p = Vector512.FusedMultiplyAdd(s2, p, Vector512<float>.One);
        var logU = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(e - Vector512.Create(24)), Vector512.Create(Ln2), Vector512.Create(2f) * s * p);
        var square = Vector512.Create(-2f) * logU;
        var r = Vector512.Sqrt(Vector512.ConditionalSelect(Vector512.GreaterThan(square, Vector512<float>.Zero), square, Vector512<float>.Zero));

        var a = Vector512.ShiftRightLogical(x1, 8).AsInt32();
        var q = Vector512.ShiftRightArithmetic(a + Vector512.Create(1 << 21), 22);
        var t = Vector512.ConvertToSingle(a - Vector512.ShiftLeft(q, 22)) * Vector512.Create(1f / 4194304f);
        var t2 = t * t;
        var sp = Vector512.FusedMultiplyAdd(t2, Vector512.Create(S9), Vector512.Create(S7));
        sp = Vector512.FusedMultiplyAdd(t2, sp, Vector512.Create(S5));
        sp = Vector512.FusedMultiplyAdd(t2, sp, Vector512.Create(S3));
        sp = Vector512.FusedMultiplyAdd(t2, sp, Vector512.Create(S1));
        var sin = t * sp;
        var cp = Vector512.FusedMultiplyAdd(t2, Vector512.Create(C10), Vector512.Create(C8));
        cp = Vector512.FusedMultiplyAdd(t2, cp, Vector512.Create(C6));
        cp = Vector512.FusedMultiplyAdd(t2, cp, Vector512.Create(C4));
        cp = Vector512.FusedMultiplyAdd(t2, cp, Vector512.Create(C2));
        var cos = Vector512.FusedMultiplyAdd(t2, cp, Vector512<float>.One);
        var swap = Vector512.Equals(q & Vector512<int>.One, Vector512<int>.One).AsSingle();
        var two = Vector512.Create(2);
        var sinTurned = (Vector512.ConditionalSelect(swap, cos, sin).AsInt32() ^ Vector512.ShiftLeft(q & two, 30)).AsSingle();
        var cosTurned = (Vector512.ConditionalSelect(swap, sin, cos).AsInt32() ^ Vector512.ShiftLeft((q + Vector512<int>.One) & two, 30)).AsSingle();
        return (r * cosTurned, r * sinTurned);
    }

    // ------------------------------------------------------------------ 8 blocks (AVX2)

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pairs256(float* z, long j, uint c2, uint c3, uint k0, uint k1)
    {
        var x0 = Vector256.Create((uint)j) + Vector256<uint>.Indices;
        var x1 = Vector256.Create((uint)(j >> 32));
        var x2 = Vector256.Create(c2);
        var x3 = Vector256.Create(c3);
        for (int round = 0; round < 10; round++)
        {
            var (hi0, lo0) = MultiplyHighLow(0xD2511F53u, x0);
            var (hi1, lo1) = MultiplyHighLow(0xCD9E8D57u, x2);
            var n0 = hi1 ^ x1 ^ Vector256.Create(k0);
            var n2 = hi0 ^ x3 ^ Vector256.Create(k1);
            x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
            k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
        }
        var (z0, z1) = BoxMuller(x0, x1);
        // unpack interleaves within each 128-bit half; the two permutes put the halves in order.
        var low = Avx.UnpackLow(z0, z1);
        var high = Avx.UnpackHigh(z0, z1);
        Avx.Permute2x128(low, high, 0x20).Store(z);
        Avx.Permute2x128(low, high, 0x31).Store(z + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<uint> High, Vector256<uint> Low) MultiplyHighLow(uint m, Vector256<uint> x)
    {
        var mv = Vector256.Create(m);
        var even = Avx2.Multiply(x, mv);
        var odd = Avx2.Multiply(Vector256.ShiftRightLogical(x.AsUInt64(), 32).AsUInt32(), mv);
        var high = Vector256.ConditionalSelect(Vector256.Create(0xFFFFFFFF00000000UL).AsUInt32(), odd.AsUInt32(), Vector256.ShiftRightLogical(even, 32).AsUInt32());
        return (high, x * mv);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Z0, Vector256<float> Z1) BoxMuller(Vector256<uint> x0, Vector256<uint> x1)
    {
        var bits = Vector256.ConvertToSingle(Vector256.ShiftRightLogical(x0, 8).AsInt32() + Vector256<int>.One).AsInt32();
        var e = Vector256.ShiftRightLogical(bits, 23) - Vector256.Create(127);
        var m = ((bits & Vector256.Create(0x7FFFFF)) | Vector256.Create(0x3F800000)).AsSingle();
        var fold = Vector256.GreaterThan(m, Vector256.Create(Sqrt2));
        m = Vector256.ConditionalSelect(fold, m * Vector256.Create(0.5f), m);
        e -= fold.AsInt32();
        var f = m - Vector256<float>.One;
        var s = f / (f + Vector256.Create(2f));
        var s2 = s * s;
        var p = Vector256.FusedMultiplyAdd(s2, Vector256.Create(L9), Vector256.Create(L7));
        p = Vector256.FusedMultiplyAdd(s2, p, Vector256.Create(L5));
        p = Vector256.FusedMultiplyAdd(s2, p, Vector256.Create(L3));
        p = Vector256.FusedMultiplyAdd(s2, p, Vector256<float>.One);
        var logU = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(e - Vector256.Create(24)), Vector256.Create(Ln2), Vector256.Create(2f) * s * p);
        var square = Vector256.Create(-2f) * logU;
        var r = Vector256.Sqrt(Vector256.ConditionalSelect(Vector256.GreaterThan(square, Vector256<float>.Zero), square, Vector256<float>.Zero));

        var a = Vector256.ShiftRightLogical(x1, 8).AsInt32();
        var q = Vector256.ShiftRightArithmetic(a + Vector256.Create(1 << 21), 22);
        var t = Vector256.ConvertToSingle(a - Vector256.ShiftLeft(q, 22)) * Vector256.Create(1f / 4194304f);
        var t2 = t * t;
        var sp = Vector256.FusedMultiplyAdd(t2, Vector256.Create(S9), Vector256.Create(S7));
        sp = Vector256.FusedMultiplyAdd(t2, sp, Vector256.Create(S5));
        sp = Vector256.FusedMultiplyAdd(t2, sp, Vector256.Create(S3));
        sp = Vector256.FusedMultiplyAdd(t2, sp, Vector256.Create(S1));
        var sin = t * sp;
        var cp = Vector256.FusedMultiplyAdd(t2, Vector256.Create(C10), Vector256.Create(C8));
        cp = Vector256.FusedMultiplyAdd(t2, cp, Vector256.Create(C6));
        cp = Vector256.FusedMultiplyAdd(t2, cp, Vector256.Create(C4));
        cp = Vector256.FusedMultiplyAdd(t2, cp, Vector256.Create(C2));
        var cos = Vector256.FusedMultiplyAdd(t2, cp, Vector256<float>.One);
        var swap = Vector256.Equals(q & Vector256<int>.One, Vector256<int>.One).AsSingle();
        var two = Vector256.Create(2);
        var sinTurned = (Vector256.ConditionalSelect(swap, cos, sin).AsInt32() ^ Vector256.ShiftLeft(q & two, 30)).AsSingle();
        var cosTurned = (Vector256.ConditionalSelect(swap, sin, cos).AsInt32() ^ Vector256.ShiftLeft((q + Vector256<int>.One) & two, 30)).AsSingle();
        return (r * cosTurned, r * sinTurned);
    }
}
