using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using CudaSwa.Util;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// The SWAG collection pass and the sample pass on every backend, against references computed
/// here in double: running moments of fresh random snapshots, and the sample formula with the
/// Philox normals drawn independently of the backend.
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

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(4)]
    public void SwagSampleIsMeanPlusScaledDiagonalAndLowRankTerms(int columns)
    {
        int n = 2051;
        var mean = Rng.Floats(n, -1, 1);
        var variance = Rng.Floats(n, 0, 0.2f);
        var square = mean.Select((m, j) => m * m + variance[j]).ToArray();
        square[3] = mean[3] * mean[3] - 0.5f; // negative variance: clamped to the floor
        var deviations = Rng.Floats(Math.Max(1, columns) * n, -0.3f, 0.3f);
        var normals = Rng.Floats(Math.Max(1, columns), -2, 2);
        ulong seed = (ulong)Rng.Random.NextInt64() | 1UL << 63;
        uint sample = (uint)Rng.Random.Next();
        var spec = new SwagSampleSpec(columns, 0.7f, columns > 0 ? 0.3f : 0f, 1e-8f, seed, sample);
        var output = Poisoned(n);
        B.SwagSample(Put(mean, n), Put(square, n), columns > 0 ? Put(deviations, deviations.Length) : default,
            columns > 0 ? Put(normals, normals.Length) : default, spec, output);
        var expected = new double[n];
        for (int i = 0; i < n; i++)
        {
            float vf = square[i] - mean[i] * mean[i]; // the op's definition: the float difference, then the floor
            double v = Math.Max(vf, 1e-8);
            var pair = Philox.NormalPair(Philox.Generate((uint)(i / 2), 0, sample, 0x53574147u, (uint)seed, (uint)(seed >> 32)));
            double z = i % 2 == 0 ? pair.Z0 : pair.Z1;
            double low = 0;
            for (int k = 0; k < columns; k++) low += (double)deviations[k * n + i] * normals[k];
            expected[i] = mean[i] + 0.7 * Math.Sqrt(v) * z + 0.3 * low;
        }
        Close.Check(Get(output), expected, 2e-5, 1e-4, $"sample ({Rng})");
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
