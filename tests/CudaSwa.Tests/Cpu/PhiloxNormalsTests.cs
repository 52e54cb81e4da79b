using CudaSwa.Cpu.Simd;
using CudaSwa.Tests.Support;
using CudaSwa.Util;
using NUnit.Framework;

namespace CudaSwa.Tests.Cpu;

/// <summary>
/// The float32 Box-Muller of <see cref="Philox.NormalPair"/> (built from basic IEEE operations so
/// every backend gives the same bits) against a float64 Box-Muller of the same two words, its SIMD
/// batches (<see cref="PhiloxNormals.Fill"/>) against the scalar code at every width, and the
/// distribution of many draws against the standard normal.
/// </summary>
[Category("Cpu")]
[NonParallelizable] // the width limit is process-wide
public class PhiloxNormalsTests
{
    private Fresh _rng = null!;

    [SetUp]
    public void Create() => _rng = new Fresh();

    /// <summary>The float64 Box-Muller of the same uniforms: u1 = k/2²⁴ with k = (x0 ≫ 8) + 1, u2 = (x1 ≫ 8)/2²⁴.</summary>
    private static (double Z0, double Z1) Reference(uint x0, uint x1)
    {
        double u1 = ((x0 >> 8) + 1.0) / 16777216.0;
        double u2 = (x1 >> 8) / 16777216.0;
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        return (r * Math.Cos(2 * Math.PI * u2), r * Math.Sin(2 * Math.PI * u2));
    }

    [Test]
    public void NormalPairIsTheBoxMullerOfItsWordsToAFewUlps()
    {
        // Edge words: the smallest and largest radius words, around the sqrt(2) fold and powers of two,
        // and angles at and beside every quarter turn (where the quadrant logic switches).
        var radius = new List<uint> { 0, 0xFFFFFFFF, 0xFFFFFE00, 0x100, 0x7FFFFF00, 0x80000000, 0xB504F300, 0xB504F400, 0x5A827900 };
        var angle = new List<uint>();
        for (uint quarter = 0; quarter < 4; quarter++)
            foreach (int d in new[] { -2, -1, 0, 1, 2 })
                angle.Add((uint)(((long)quarter << 30) + ((long)d << 8)) & 0xFFFFFFFF);
        angle.AddRange([0x20000000u, 0x1FFFFF00u, 0x20000100u, 0xFFFFFF00u]);
        var pairs = new List<(uint, uint)>();
        foreach (uint x0 in radius) foreach (uint x1 in angle) pairs.Add((x0, x1));
        for (int i = 0; i < 400_000; i++) pairs.Add(((uint)_rng.Random.NextInt64(0, 1L << 32), (uint)_rng.Random.NextInt64(0, 1L << 32)));

        double worst = 0;
        foreach (var (x0, x1) in pairs)
        {
            var (z0, z1) = Philox.NormalPair(new Philox.Block(x0, x1, 0, 0));
            var (r0, r1) = Reference(x0, x1);
            // A float's spacing at |z| is |z|·2⁻²³; allow a few of them, with an absolute floor near zero.
            double err = Math.Max(Math.Abs(z0 - r0), Math.Abs(z1 - r1)) / (Math.Max(Math.Abs(r0), Math.Abs(r1)) + 0.05);
            worst = Math.Max(worst, err);
            Assert.That(err, Is.LessThan(6e-7), $"words ({x0:X8}, {x1:X8}): ({z0}, {z1}) vs float64 ({r0}, {r1}) ({_rng})");
        }
        TestContext.Out.WriteLine($"worst error relative to the pair's size: {worst:E2} over {pairs.Count} pairs");
    }

    [Test]
    public void FillGivesTheScalarBitsAtEveryWidth()
    {
        uint c2 = (uint)_rng.Random.Next(), c3 = (uint)_rng.Random.Next(), k0 = (uint)_rng.Random.Next(), k1 = (uint)_rng.Random.Next();
        long far = _rng.Random.NextInt64(1L << 33, 1L << 40);
        // Starts that are vector-aligned or not, and one whose batch crosses a change of the counter's high word.
        var cases = new (long First, long Pairs)[] { (0, 0), (0, 1), (3, 15), (5, 16), (7, 17), (0, 1000), ((1L << 32) - 7, 40), (far, 333) };
        foreach (var width in Simd.Supported)
            foreach (var (first, count) in cases)
            {
                var z = Close.Poison((int)(2 * count + 2));
                using (Simd.Limit(width))
                    unsafe
                    {
                        fixed (float* p = z) PhiloxNormals.Fill(p, first, count, c2, c3, k0, k1);
                    }
                for (long i = 0; i < count; i++)
                {
                    long j = first + i;
                    var (a, b) = Philox.NormalPair(Philox.Generate((uint)j, (uint)(j >> 32), c2, c3, k0, k1));
                    Assert.That(BitConverter.SingleToInt32Bits(z[2 * i]), Is.EqualTo(BitConverter.SingleToInt32Bits(a)), $"{width}, first {first}, pair {i}: z0 ({_rng})");
                    Assert.That(BitConverter.SingleToInt32Bits(z[2 * i + 1]), Is.EqualTo(BitConverter.SingleToInt32Bits(b)), $"{width}, first {first}, pair {i}: z1 ({_rng})");
                }
                Assert.That(float.IsNaN(z[2 * count]) && float.IsNaN(z[2 * count + 1]), $"{width}: wrote past {count} pairs");
            }
    }

    [Test]
    public void ManyDrawsFollowTheStandardNormal()
    {
        // Fixed stream: a statistical bound checked at a stated level, reproducible (no chance failures).
        const int pairs = 500_000;
        var z = new float[2 * pairs];
        unsafe
        {
            fixed (float* p = z) PhiloxNormals.Fill(p, 0, pairs, 11, 0x53574147u, 2024, 7);
        }
        int n = z.Length;
        double mean = z.Average(v => (double)v);
        double variance = z.Average(v => (v - mean) * (v - mean));
        Assert.That(Math.Abs(mean), Is.LessThan(5 / Math.Sqrt(n)), "mean within 5 standard errors of 0");
        Assert.That(Math.Abs(variance - 1), Is.LessThan(5 * Math.Sqrt(2.0 / n)), "variance within 5 standard errors of 1");
        // Kolmogorov-Smirnov distance to Φ: at the 0.1% level the critical value is 1.95/sqrt(n).
        var sorted = z.Select(v => (double)v).Order().ToArray();
        double d = 0;
        for (int i = 0; i < n; i++)
        {
            double cdf = Phi(sorted[i]);
            d = Math.Max(d, Math.Max((i + 1.0) / n - cdf, cdf - (double)i / n));
        }
        TestContext.Out.WriteLine($"mean {mean:E2}, variance {variance:F5}, KS distance {d:E2} (critical {1.95 / Math.Sqrt(n):E2})");
        Assert.That(d, Is.LessThan(1.95 / Math.Sqrt(n)), "Kolmogorov-Smirnov distance to the standard normal");
        // The tails: Box-Muller from 24-bit uniforms reaches |z| = 5.77; P(|z| > 3) = 0.0026998.
        double tail = z.Count(v => Math.Abs(v) > 3) / (double)n;
        Assert.That(Math.Abs(tail - 0.0026998), Is.LessThan(5 * Math.Sqrt(0.0027 / n)), "two-sided tail beyond 3");
    }

    /// <summary>The standard normal CDF (from erfc, accurate to ~1e-7: far below the KS bound of ~2e-3).</summary>
    private static double Phi(double x) => 0.5 * Erfc(-x / Math.Sqrt(2));

    private static double Erfc(double x)
    {
        // Numerical Recipes' erfc Chebyshev fit (relative error below 1.2e-7 everywhere).
        double z = Math.Abs(x), t = 1 / (1 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
            t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2 - r;
    }
}
