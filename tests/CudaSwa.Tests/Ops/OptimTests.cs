using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>The fused SGD step and the running-average update against hand-computed closed forms.</summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class OptimTests(string backend) : BackendTest(backend)
{
    [TestCase(false, 0f)]
    [TestCase(false, 5e-4f)]
    [TestCase(true, 3e-4f)]
    public void SgdStepMatchesPyTorchSemantics(bool nesterov, float wd)
    {
        int n = 1037;
        var w = Rng.Floats(n);
        var g = Rng.Floats(n);
        var v = Rng.Floats(n);
        var h = new SgdHyper(0.05f, 0.9f, wd, nesterov);
        var wt = Put(w, n);
        var vt = Put(v, n);
        B.SgdStep(wt, Put(g, n), vt, h);
        var wExp = new double[n];
        var vExp = new double[n];
        for (int i = 0; i < n; i++)
        {
            double gi = g[i] + (double)wd * w[i];
            double vi = 0.9 * v[i] + gi;
            vExp[i] = vi;
            wExp[i] = w[i] - 0.05 * (nesterov ? gi + 0.9 * vi : vi);
        }
        Close.Check(Get(vt), vExp, 1e-6, 1e-6, $"velocity ({Rng})");
        Close.Check(Get(wt), wExp, 1e-6, 1e-6, $"weights ({Rng})");
    }

    [Test]
    public void SgdFirstStepFromZeroVelocityIsPlainGradientStep()
    {
        // PyTorch initialises the momentum buffer with the first gradient; zero velocity gives the same.
        var w = new float[] { 1f, -2f, 0.5f };
        var g = new float[] { 0.1f, 0.2f, -0.3f };
        var wt = Put(w, 3);
        B.SgdStep(wt, Put(g, 3), Put(new float[3], 3), new SgdHyper(0.1f, 0.9f, 0f, false));
        Close.Check(Get(wt), new double[] { 1 - 0.01, -2 - 0.02, 0.5 + 0.03 }, 1e-7, 1e-6, "w");
    }

    [Test]
    public void AverageUpdateIsTheRunningMeanAndCopiesFirst()
    {
        int n = 2050, k = 5;
        var avg = Poisoned(n); // alpha = 1 must copy whatever the buffer held, NaN included
        var snapshots = Enumerable.Range(0, k).Select(_ => Rng.Floats(n, -3, 3)).ToArray();
        for (int i = 0; i < k; i++) B.AverageUpdate(avg, Put(snapshots[i], n), 1f / (i + 1));
        var mean = Enumerable.Range(0, n).Select(j => snapshots.Average(s => (double)s[j])).ToArray();
        Close.Check(Get(avg), mean, 1e-6, 1e-6, $"running mean ({Rng})");
    }

    [Test]
    public void MultiBufferUpdateTouchesEveryPair()
    {
        int[] lengths = [1, 63, 64, 65, 1000, 4097];
        var avgHost = lengths.Select(l => Rng.Floats(l)).ToArray();
        var curHost = lengths.Select(l => Rng.Floats(l)).ToArray();
        var pairs = lengths.Select((l, i) => new AveragePair(Put(avgHost[i], l), Put(curHost[i], l))).ToArray();
        B.AverageUpdate(pairs, 0.25f);
        for (int i = 0; i < lengths.Length; i++)
            Close.Check(Get(pairs[i].Average), avgHost[i].Select((a, j) => a + 0.25 * (curHost[i][j] - a)).ToArray(), 1e-6, 1e-6, $"pair {i}");
    }
}
