using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// The SWAG collection pass and the sample pass on every backend, against references computed
/// here in double: running moments of fresh random snapshots; the sample's formula exactly where
/// the noise cancels (no diagonal term, or the same draw on two inputs), and its noise by the law
/// it must follow (standard normal, independent of the element and of the inputs, fixed by the seed
/// and the sample index) — with no call to the generator behind it.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class SwagOpTests(string backend) : BackendTest(backend)
{
    [TestCase(1)]
    [TestCase(1037)]
    [TestCase(70_001)]
    [TestCase(2_100_003)] // above the CPU's streaming-store threshold for the deviation column
    public void SwagCollectKeepsMeanMeanOfSquaresAndTheDeviationFromTheNewMean(int n)
    {
        int k = n > 1_000_000 ? 3 : 5;
        var mean = Poisoned(n);   // the first collection copies: whatever was there (NaN included) is gone
        var square = Poisoned(n);
        var snapshots = Enumerable.Range(0, k).Select(_ => Rng.Floats(n, -3, 3)).ToArray();
        for (int s = 0; s < k; s++)
        {
            var deviation = Poisoned(n);
            B.SwagCollect(Put(snapshots[s], n), mean, square, deviation, s == 0 ? 1f : 1f / (s + 1));
            var m = Enumerable.Range(0, n).Select(j => snapshots.Take(s + 1).Average(w => (double)w[j])).ToArray();
            var sq = Enumerable.Range(0, n).Select(j => snapshots.Take(s + 1).Average(w => (double)w[j] * w[j])).ToArray();
            Close.Check(Get(mean), m, 1e-5, 1e-5, $"mean after {s + 1} ({Rng})");
            Close.Check(Get(square), sq, 1e-5, 1e-5, $"mean of squares after {s + 1} ({Rng})");
            Close.Check(Get(deviation), snapshots[s].Select((w, j) => w - m[j]).ToArray(), 1e-5, 1e-5, $"deviation {s + 1} ({Rng})");
        }
    }

    [Test]
    public void SwagCollectWithoutADeviationColumnUpdatesTheMoments()
    {
        int n = 333;
        var w = Rng.Floats(n);
        var mean = Put(Rng.Floats(n), n);
        var before = Get(mean);
        var square = Put(Rng.Floats(n, 0, 1), n);
        var sqBefore = Get(square);
        B.SwagCollect(Put(w, n), mean, square, default, 0.25f);
        Close.Check(Get(mean), before.Select((m, j) => m + 0.25 * (w[j] - m)).ToArray(), 1e-6, 1e-6, "mean");
        Close.Check(Get(square), sqBefore.Select((s, j) => s + 0.25 * ((double)w[j] * w[j] - s)).ToArray(), 1e-6, 1e-6, "mean of squares");
    }

    /// <summary>
    /// output = mean + a*sqrt(max(sq - mean², floor))*z + b*Σk deviations[k]*normals[k]. With a = 0 the
    /// low-rank term alone, exactly; with a > 0 the z recovered from two different inputs drawn with
    /// the same (seed, sample) must be the same numbers (the noise depends on the element, the seed
    /// and the sample only), and the variance floor applies where sq - mean² is negative.
    /// </summary>
    [TestCase(0)]
    [TestCase(1)]
    [TestCase(4)]
    public void SwagSampleIsMeanPlusScaledDiagonalAndLowRankTerms(int columns)
    {
        int n = 2051;
        var deviations = Rng.Floats(Math.Max(1, columns) * n, -0.3f, 0.3f);
        var normals = Rng.Floats(Math.Max(1, columns), -2, 2);
        ulong seed = (ulong)Rng.Random.NextInt64() | 1UL << 63;
        uint sample = (uint)Rng.Random.Next();
        double Low(int i) => Enumerable.Range(0, columns).Sum(k => (double)deviations[k * n + i] * normals[k]);
        float[] Draw(float[] mean, float[] square, float diagonal)
        {
            var output = Poisoned(n);
            B.SwagSample(Put(mean, n), Put(square, n), columns > 0 ? Put(deviations, deviations.Length) : default,
                columns > 0 ? Put(normals, normals.Length) : default, new SwagSampleSpec(columns, diagonal, columns > 0 ? 0.3f : 0f, 1e-8f, seed, sample), output);
            return Get(output);
        }
        (float[] Mean, float[] Square) Inputs()
        {
            var mean = Rng.Floats(n, -1, 1);
            var variance = Rng.Floats(n, 0.01f, 0.2f);
            return (mean, mean.Select((m, j) => m * m + variance[j]).ToArray());
        }

        var (m1, s1) = Inputs();
        Close.Check(Draw(m1, s1, 0f), Enumerable.Range(0, n).Select(i => m1[i] + 0.3 * Low(i)).ToArray(), 1e-6, 1e-6, $"no diagonal term: mean + b*low rank ({Rng})");

        var (m2, s2) = Inputs();
        double[] Noise(float[] output, float[] mean, float[] square) => Enumerable.Range(0, n)
            .Select(i => (output[i] - mean[i] - 0.3 * Low(i)) / (0.7 * Math.Sqrt(Math.Max(square[i] - mean[i] * mean[i], 1e-8)))).ToArray();
        var z1 = Noise(Draw(m1, s1, 0.7f), m1, s1);
        var z2 = Noise(Draw(m2, s2, 0.7f), m2, s2);
        Close.Check(z2.Select(v => (float)v).ToArray(), z1, 2e-3, 2e-3, $"the same noise for other inputs: it depends on the element, seed and sample only ({Rng})");
        Assert.That(z1.Average(), Is.EqualTo(0).Within(4.5 / Math.Sqrt(n)), $"noise mean ({Rng})");
        Assert.That(z1.Average(v => v * v), Is.EqualTo(1).Within(4.5 * Math.Sqrt(2.0 / n)), $"noise variance ({Rng})");

        // A negative variance (sq < mean²) is clamped to the floor: the element stays at mean + low rank, within sqrt(floor)*|z|.
        var s3 = (float[])s1.Clone();
        s3[3] = m1[3] * m1[3] - 0.5f;
        var o3 = Draw(m1, s3, 0.7f);
        Assert.That(o3[3], Is.EqualTo(m1[3] + 0.3 * Low(3)).Within(1e-6 + 0.7 * 1e-4 * 6), "a negative variance uses the floor");
    }

    /// <summary>The noise of many samples is standard normal in law: its quantiles, independent across elements and samples.</summary>
    [Test]
    public void SwagSampleNoiseIsStandardNormalAndIndependent()
    {
        int n = 100_003;
        var mean = new float[n];
        var square = Enumerable.Repeat(1f, n).ToArray(); // variance 1: the output is the noise itself
        ulong seed = (ulong)Rng.Random.NextInt64();
        float[] Draw(uint sample)
        {
            var output = Poisoned(n);
            B.SwagSample(Put(mean, n), Put(square, n), default, default, new SwagSampleSpec(0, 1f, 0f, 1e-8f, seed, sample), output);
            return Get(output);
        }
        var z = Draw(5);
        var other = Draw(6);
        Assert.That(Draw(5), Is.EqualTo(z), "the same seed and sample index give the same draw");
        // Standard normal CDF at a few points vs the empirical share below them.
        foreach (var (x, cdf) in new[] { (-2.0, 0.0227501), (-1.0, 0.1586553), (0.0, 0.5), (0.5, 0.6914625), (1.5, 0.9331928) })
        {
            double share = z.Count(v => v < x) / (double)n;
            Assert.That(share, Is.EqualTo(cdf).Within(4.5 * Math.Sqrt(cdf * (1 - cdf) / n)), $"P(z < {x}) ({Rng})");
        }
        double Correlation(Func<int, double> a, Func<int, double> b, int count) =>
            Enumerable.Range(0, count).Sum(i => a(i) * b(i)) / count;
        Assert.That(Correlation(i => z[i], i => z[i + 1], n - 1), Is.EqualTo(0).Within(4.5 / Math.Sqrt(n)), "neighbouring elements uncorrelated");
        Assert.That(Correlation(i => z[i], i => z[i + 2], n - 2), Is.EqualTo(0).Within(4.5 / Math.Sqrt(n)), "elements two apart uncorrelated");
        Assert.That(Correlation(i => z[i], i => other[i], n), Is.EqualTo(0).Within(4.5 / Math.Sqrt(n)), "two samples uncorrelated");
    }

    [Test]
    public void SwagSampleRefusesTooFewDeviationValues()
    {
        int n = 10;
        var t = Put(Rng.Floats(n), n);
        var ex = Assert.Throws<ArgumentException>(() => B.SwagSample(t, t, Put(Rng.Floats(15), 15), Put(Rng.Floats(2), 2),
            new SwagSampleSpec(2, 1, 1, 0, 1, 0), Poisoned(n)));
        Assert.That(ex!.Message, Does.Contain("deviations").And.Contain("20"));
    }
}
