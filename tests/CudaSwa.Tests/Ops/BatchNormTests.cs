using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// Batch norm against its closed form: normalisation with the biased batch variance, running
/// statistics updated with the caller's factor and the unbiased variance (M/(M-1)), inference
/// with the running statistics; backward against finite differences of the float64 reference.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class BatchNormTests(string backend) : BackendTest(backend)
{
    private const double Eps = 1e-5;

    [TestCase(4, 3, 5, 5, 0.1)]
    [TestCase(2, 5, 1, 1, 1.0)]
    [TestCase(3, 2, 4, 3, 0.25)]
    public void TrainingForwardMatchesClosedForm(int n, int c, int h, int w, double factor)
    {
        int hw = h * w, m = n * hw;
        var x = Rng.Floats(n * c * hw, -2, 3);
        var gamma = Rng.Floats(c, 0.5f, 1.5f);
        var beta = Rng.Floats(c);
        var rm0 = Rng.Floats(c);
        var rv0 = Rng.Floats(c, 0.5f, 2f);
        var y = Poisoned(n, c, h, w);
        var rm = Put(rm0, c);
        var rv = Put(rv0, c);
        var sm = Poisoned(c);
        var si = Poisoned(c);
        B.BatchNormForwardTraining(Put(x, n, c, h, w), y, Put(gamma, c), Put(beta, c), rm, rv, factor, Eps, sm, si);
        var (yRef, mean, var) = Reference.BatchNormTrain(Close.ToDouble(x), n, c, hw, Close.ToDouble(gamma), Close.ToDouble(beta), Eps);
        // x - mean is rounded in float (|x| <= 3: half an ulp is 1.8e-7) and then scaled by gamma/sqrt(var + eps):
        // with few samples per channel (2 here) the variance can be tiny and that scale large, so the bound grows with it.
        double amplification = var.Select((v, i) => Math.Abs(gamma[i]) / Math.Sqrt(v + Eps)).Max();
        double atol = 1e-5 * Tol + 4 * 1.8e-7 * amplification;
        Close.Check(Get(y), yRef, atol, 1e-5 * Tol, $"y ({Rng}, float rounding of x - mean amplified up to {amplification:F1}x)");
        Close.Check(Get(sm), mean, 1e-6, 1e-5, "saved mean");
        Close.Check(Get(si), var.Select(v => 1 / Math.Sqrt(v + Eps)).ToArray(), 1e-6, 1e-5, "saved inverse std");
        Close.Check(Get(rm), mean.Select((v, i) => (1 - factor) * rm0[i] + factor * v).ToArray(), 1e-6, 1e-5, "running mean");
        Close.Check(Get(rv), var.Select((v, i) => (1 - factor) * rv0[i] + factor * v * m / (m - 1)).ToArray(), 1e-6, 1e-5, "running var (unbiased)");
    }

    [Test]
    public void InferenceUsesRunningStatistics()
    {
        int n = 3, c = 4, hw = 6;
        var x = Rng.Floats(n * c * hw, -2, 2);
        var gamma = Rng.Floats(c, 0.5f, 1.5f);
        var beta = Rng.Floats(c);
        var rm = Rng.Floats(c);
        var rv = Rng.Floats(c, 0.5f, 2f);
        var y = Poisoned(n, c, hw, 1);
        B.BatchNormForwardInference(Put(x, n, c, hw, 1), y, Put(gamma, c), Put(beta, c), Put(rm, c), Put(rv, c), Eps);
        var expected = x.Select((v, i) => { int ch = (i / hw) % c; return gamma[ch] * (v - rm[ch]) / Math.Sqrt(rv[ch] + Eps) + beta[ch]; }).ToArray();
        Close.Check(Get(y), expected, 1e-5 * Tol, 1e-5 * Tol, $"inference ({Rng})");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void BackwardMatchesFiniteDifferences(bool accumulate)
    {
        int n = 3, c = 2, h = 3, w = 2, hw = h * w;
        var x = Rng.Floats(n * c * hw, -2, 2);
        var gamma = Rng.Floats(c, 0.5f, 1.5f);
        var beta = Rng.Floats(c);
        var r = Rng.Floats(n * c * hw);
        var xt = Put(x, n, c, h, w);
        var sm = B.AllocateTensor(new TensorShape(c));
        var si = B.AllocateTensor(new TensorShape(c));
        B.BatchNormForwardTraining(xt, B.AllocateTensor(TensorShape.Nchw(n, c, h, w)), Put(gamma, c), Put(beta, c),
            B.AllocateTensor(new TensorShape(c)), B.AllocateTensor(new TensorShape(c)), 0.1, Eps, sm, si);
        var priorDx = Rng.Floats(n * c * hw);
        var dx = accumulate ? Put(priorDx, n, c, h, w) : Poisoned(n, c, h, w);
        var dgPrior = Rng.Floats(c);
        var dbPrior = Rng.Floats(c);
        var dg = Put(dgPrior, c);
        var db = Put(dbPrior, c);
        B.BatchNormBackward(xt, Put(r, n, c, h, w), Put(gamma, c), sm, si, dx, dg, db, Eps, accumulate);

        double[] xd = Close.ToDouble(x), gd = Close.ToDouble(gamma), bd = Close.ToDouble(beta), rd = Close.ToDouble(r);
        var numX = Reference.NumericGradient(v => Reference.Dot(rd, Reference.BatchNormTrain(v, n, c, hw, gd, bd, Eps).Y), xd);
        var numG = Reference.NumericGradient(v => Reference.Dot(rd, Reference.BatchNormTrain(xd, n, c, hw, v, bd, Eps).Y), gd);
        var numB = Reference.NumericGradient(v => Reference.Dot(rd, Reference.BatchNormTrain(xd, n, c, hw, gd, v, Eps).Y), bd);
        if (accumulate) for (int i = 0; i < numX.Length; i++) numX[i] += priorDx[i];
        for (int i = 0; i < c; i++) { numG[i] += dgPrior[i]; numB[i] += dbPrior[i]; }
        Close.Check(Get(dx), numX, 2e-5 * Tol, 1e-4, $"dx ({Rng})");
        Close.Check(Get(dg), numG, 2e-5 * Tol, 1e-4, $"dgamma ({Rng})");
        Close.Check(Get(db), numB, 2e-5 * Tol, 1e-4, $"dbeta ({Rng})");
    }

    [Test]
    public void MergedStatisticsEqualPopulationStatistics()
    {
        int c = 3, hw = 4;
        int[] batches = [5, 5, 2]; // uneven last batch
        var all = new List<float[]>();
        var accMean = Poisoned(c);
        var accM2 = Poisoned(c);
        long seen = 0;
        foreach (int n in batches)
        {
            var x = Rng.Floats(n * c * hw, -1, 4);
            for (int i = 0; i < n * c * hw; i++) x[i] += (float)(all.Count * 0.7); // batches differ in mean
            all.Add(x);
            var sm = B.AllocateTensor(new TensorShape(c));
            var si = B.AllocateTensor(new TensorShape(c));
            B.BatchNormForwardTraining(Put(x, n, c, hw, 1), B.AllocateTensor(TensorShape.Nchw(n, c, hw, 1)), Put(Enumerable.Repeat(1f, c).ToArray(), c),
                Put(new float[c], c), B.AllocateTensor(new TensorShape(c)), B.AllocateTensor(new TensorShape(c)), 0.5, Eps, sm, si);
            B.BatchNormMergeStatistics(sm, si, Eps, (long)n * hw, seen, accMean, accM2);
            seen += (long)n * hw;
        }
        var mean = new double[c];
        var count = new double[c];
        var values = new List<double>[c];
        for (int ch = 0; ch < c; ch++) values[ch] = [];
        for (int b = 0; b < batches.Length; b++)
            for (int i = 0; i < all[b].Length; i++)
                values[(i / hw) % c].Add(all[b][i]);
        for (int ch = 0; ch < c; ch++) { mean[ch] = values[ch].Average(); count[ch] = values[ch].Count; }
        var m2 = values.Select((v, ch) => v.Sum(t => (t - mean[ch]) * (t - mean[ch]))).ToArray();
        Close.Check(Get(accMean), mean, 1e-5, 1e-5, $"population mean ({Rng})");
        Close.Check(Get(accM2), m2, 1e-4, 1e-4, $"population M2 ({Rng})");
    }
}
