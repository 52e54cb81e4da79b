using System.Runtime.CompilerServices;

namespace CudaSwa.Util;

/// <summary>
/// Philox4x32-10 (Salmon et al. 2011, Random123), the counter-based generator cuRAND also uses.
/// A (counter, key) pair maps to four independent 32-bit words with no state, so the CPU and the
/// GPU draw the same numbers for the same (seed, epoch, sample index) in any order.
/// The CUDA twin lives in kernels/common.cuh and must stay identical.
/// </summary>
internal static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    public readonly record struct Block(uint X0, uint X1, uint X2, uint X3)
    {
        public uint this[int i] => i switch { 0 => X0, 1 => X1, 2 => X2, _ => X3 };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Block Generate(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
            uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            uint n0 = hi1 ^ c1 ^ k0;
            uint n2 = hi0 ^ c3 ^ k1;
            c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
            k0 += W0; k1 += W1;
        }
        return new Block(c0, c1, c2, c3);
    }

    /// <summary>A float in [0, 1) from the top 24 bits of a word (exact in float32 on every backend).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToUniform(uint word) => (word >> 8) * (1.0f / 16777216.0f);

    /// <summary>The augmentation draw of one sample: crop offsets in [0, 2*pad] and a flip bit.</summary>
    public static (int Dx, int Dy, bool Flip) AugmentDraw(ulong seed, int epoch, int sampleIndex, int pad)
    {
        var b = Generate((uint)sampleIndex, (uint)epoch, 0xA5A5A5A5u, 0, (uint)seed, (uint)(seed >> 32));
        uint span = (uint)(2 * pad + 1);
        return ((int)(b.X0 % span), (int)(b.X1 % span), (b.X2 & 1) != 0);
    }

    /// <summary>Whether dropout keeps element i: the i-th uniform of stream (seed, stream) is at least p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool DropoutKeep(ulong seed, ulong stream, long i, float p)
    {
        var b = Generate((uint)(i >> 2), (uint)(i >> 34), (uint)stream, (uint)(stream >> 32), (uint)seed, (uint)(seed >> 32));
        return ToUniform(b[(int)(i & 3)]) >= p;
    }

    /// <summary>
    /// Two standard normal draws from one block: Box-Muller on its first two words in float32,
    /// built from IEEE basic operations only (products, sums, fused multiply-adds, one division,
    /// one square root, integer and bit operations) in one fixed order, so this scalar code, the
    /// SIMD batches of <see cref="Cpu.Simd.PhiloxNormals"/> and philox_normal_pair in
    /// kernels/common.cuh give the same bits (no library log, sin or cos, whose last bits differ
    /// between platforms).
    /// </summary>
    /// <remarks>
    /// Radius: u1 = k·2⁻²⁴ with k = (x0 ≫ 8) + 1 in [1, 2²⁴], so the logarithm is finite;
    /// k = 2ᵉ·m with m in [√½, √2], ln u1 = (e − 24)·ln 2 + ln m and ln m = 2·atanh(s),
    /// s = (m − 1)/(m + 1), |s| ≤ 0.172, as an odd series to s⁹ (truncation below 5e-9).
    /// Angle: 2π·u2 = (π/2)(q + t), u2 = a·2⁻²⁴ with a = x1 ≫ 8, q = round(a/2²²), t in [−½, ½];
    /// sin and cos of (π/2)t as Taylor polynomials to degree 9 and 10 (truncation below 2e-9),
    /// then turned by q quarter turns with exact swaps and sign flips.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (float Z0, float Z1) NormalPair(Block b)
    {
        int bits = BitConverter.SingleToInt32Bits((int)(b.X0 >> 8) + 1);
        int e = (bits >> 23) - 127;
        float m = BitConverter.Int32BitsToSingle((bits & 0x7FFFFF) | 0x3F800000);
        if (m > NormalConstants.Sqrt2) { m *= 0.5f; e += 1; }
        float f = m - 1f;
        float s = f / (f + 2f);
        float s2 = s * s;
        float p = MathF.FusedMultiplyAdd(s2, NormalConstants.L9, NormalConstants.L7);
        p = MathF.FusedMultiplyAdd(s2, p, NormalConstants.L5);
        p = MathF.FusedMultiplyAdd(s2, p, NormalConstants.L3);
        p = MathF.FusedMultiplyAdd(s2, p, 1f);
        float logU = MathF.FusedMultiplyAdd(e - 24, NormalConstants.Ln2, 2f * s * p);
        float square = -2f * logU;
        float r = MathF.Sqrt(square > 0f ? square : 0f);

        int a = (int)(b.X1 >> 8);
        int q = (a + (1 << 21)) >> 22;
        float t = (a - (q << 22)) * (1f / 4194304f);
        float t2 = t * t;
        float sp = MathF.FusedMultiplyAdd(t2, NormalConstants.S9, NormalConstants.S7);
        sp = MathF.FusedMultiplyAdd(t2, sp, NormalConstants.S5);
        sp = MathF.FusedMultiplyAdd(t2, sp, NormalConstants.S3);
        sp = MathF.FusedMultiplyAdd(t2, sp, NormalConstants.S1);
        float sin = t * sp;
        float cp = MathF.FusedMultiplyAdd(t2, NormalConstants.C10, NormalConstants.C8);
        cp = MathF.FusedMultiplyAdd(t2, cp, NormalConstants.C6);
        cp = MathF.FusedMultiplyAdd(t2, cp, NormalConstants.C4);
        cp = MathF.FusedMultiplyAdd(t2, cp, NormalConstants.C2);
        float cos = MathF.FusedMultiplyAdd(t2, cp, 1f);
        bool swap = (q & 1) != 0;
        float sinTurned = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(swap ? cos : sin) ^ ((q & 2) << 30));
        float cosTurned = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(swap ? sin : cos) ^ (((q + 1) & 2) << 30));
        return (r * cosTurned, r * sinTurned);
    }

    /// <summary>The first normal of <see cref="NormalPair"/>.</summary>
    public static float Normal(Block b) => NormalPair(b).Z0;

    /// <summary>Standard normal draws (Box-Muller on Philox) for weight initialisation, reproducible everywhere.</summary>
    public static void FillNormal(Span<float> destination, double std, ulong seed, ulong stream)
    {
        for (int i = 0; i < destination.Length; i += 2)
        {
            var b = Generate((uint)(i >> 1), 0, (uint)stream, (uint)(stream >> 32), (uint)seed, (uint)(seed >> 32));
            double u1 = ((b.X0 >> 8) + 1.0) / 16777217.0; // (0, 1]: log is finite
            double u2 = (b.X1 >> 8) / 16777216.0;
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            destination[i] = (float)(std * r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < destination.Length) destination[i + 1] = (float)(std * r * Math.Sin(2 * Math.PI * u2));
        }
    }

    /// <summary>Uniform draws in [-bound, bound) for PyTorch-style linear-layer initialisation.</summary>
    public static void FillUniform(Span<float> destination, double bound, ulong seed, ulong stream)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            var b = Generate((uint)(i >> 2), 1, (uint)stream, (uint)(stream >> 32), (uint)seed, (uint)(seed >> 32));
            destination[i] = (float)((2.0 * ToUniform(b[i & 3]) - 1.0) * bound);
        }
    }

    /// <summary>A permutation of 0..count-1 (Fisher-Yates driven by Philox), e.g. the sample order of one epoch.</summary>
    public static int[] Permutation(int count, ulong seed, ulong stream)
    {
        var result = new int[count];
        for (int i = 0; i < count; i++) result[i] = i;
        for (int i = count - 1; i > 0; i--)
        {
            var b = Generate((uint)i, 2, (uint)stream, (uint)(stream >> 32), (uint)seed, (uint)(seed >> 32));
            ulong wide = ((ulong)b.X0 << 32) | b.X1;
            int j = (int)(wide % (ulong)(i + 1));
            (result[i], result[j]) = (result[j], result[i]);
        }
        return result;
    }
}

/// <summary>
/// The float32 constants of <see cref="Philox.NormalPair"/> (the same literals as in
/// kernels/common.cuh): the atanh series of ln m, ln 2, √2, and the Taylor coefficients of
/// sin and cos of (π/2)t in powers of t.
/// </summary>
internal static class NormalConstants
{
    public const float Sqrt2 = 1.4142135381698608f;
    public const float Ln2 = 0.6931471824645996f;
    public const float L3 = 0.3333333432674408f, L5 = 0.20000000298023224f, L7 = 0.1428571492433548f, L9 = 0.1111111119389534f;
    public const float S1 = 1.5707963705062866f, S3 = -0.6459640860557556f, S5 = 0.07969262450933456f, S7 = -0.004681753925979137f, S9 = 0.00016044118092395365f;
    public const float C2 = -1.2337005138397217f, C4 = 0.25366950035095215f, C6 = -0.020863480865955353f, C8 = 0.0009192602592520416f, C10 = -2.520204179745633e-05f;
}
