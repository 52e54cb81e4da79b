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
    /// Two standard normal draws from one block (Box-Muller on its first two words, in double): the
    /// twin of philox_normal_pair in kernels/common.cuh. u1 lies in (0, 1], so the logarithm is finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (float Z0, float Z1) NormalPair(Block b)
    {
        double u1 = ((b.X0 >> 8) + 1.0) / 16777217.0;
        double u2 = (b.X1 >> 8) / 16777216.0;
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        double angle = 6.283185307179586 * u2;
        var (sin, cos) = Math.SinCos(angle);
        return ((float)(r * cos), (float)(r * sin));
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
