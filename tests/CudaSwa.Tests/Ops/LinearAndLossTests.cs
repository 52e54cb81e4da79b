using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>Linear layer and softmax cross-entropy against float64 references and finite differences.</summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class LinearAndLossTests(string backend) : BackendTest(backend)
{
    [TestCase(3, 7, 5)]
    [TestCase(16, 64, 10)]
    [TestCase(1, 33, 2)]
    public void LinearForwardAndBackward(int n, int inF, int outF)
    {
        var x = Rng.Floats(n * inF);
        var w = Rng.Floats(outF * inF);
        var b = Rng.Floats(outF);
        var y = Poisoned(n, outF);
        var xt = Put(x, n, inF);
        var wt = Put(w, outF, inF);
        B.LinearForward(xt, wt, Put(b, outF), y);
        double[] xd = Close.ToDouble(x), wd = Close.ToDouble(w), bd = Close.ToDouble(b);
        Close.Check(Get(y), Reference.Linear(xd, n, inF, wd, bd, outF), 1e-5 * Tol, 1e-5, $"linear ({Rng})");

        var dy = Rng.Floats(n * outF);
        var dyd = Close.ToDouble(dy);
        var dx = Poisoned(n, inF);
        B.LinearBackwardData(Put(dy, n, outF), wt, dx, false);
        var numX = Reference.NumericGradient(v => Reference.Dot(dyd, Reference.Linear(v, n, inF, wd, bd, outF)), xd);
        Close.Check(Get(dx), numX, 1e-5 * Tol, 1e-4, "linear dx");
        var dxPrior = Rng.Floats(n * inF);
        var dxAcc = Put(dxPrior, n, inF);
        B.LinearBackwardData(Put(dy, n, outF), wt, dxAcc, true);
        Close.Check(Get(dxAcc), numX.Select((g, i) => g + dxPrior[i]).ToArray(), 1e-5 * Tol, 1e-4, "linear dx (accumulated, beta = 1)");

        var dwPrior = Rng.Floats(outF * inF);
        var dbPrior = Rng.Floats(outF);
        var dw = Put(dwPrior, outF, inF);
        var db = Put(dbPrior, outF);
        B.LinearBackwardWeights(xt, Put(dy, n, outF), dw, db);
        var numW = Reference.NumericGradient(v => Reference.Dot(dyd, Reference.Linear(xd, n, inF, v, bd, outF)), wd);
        var numB = Reference.NumericGradient(v => Reference.Dot(dyd, Reference.Linear(xd, n, inF, wd, v, outF)), bd);
        Close.Check(Get(dw), numW.Select((g, i) => g + dwPrior[i]).ToArray(), 1e-5 * Tol, 1e-4, "linear dw (accumulated)");
        Close.Check(Get(db), numB.Select((g, i) => g + dbPrior[i]).ToArray(), 1e-5 * Tol, 1e-4, "linear db (accumulated)");
    }

    [Test]
    public void LinearRejectsWrongFeatureCount()
    {
        var x = B.AllocateTensor(new TensorShape(4, 6));
        var w = B.AllocateTensor(new TensorShape(3, 5));
        var ex = Assert.Throws<ArgumentException>(() => B.LinearForward(x, w, B.AllocateTensor(new TensorShape(3)), B.AllocateTensor(new TensorShape(4, 3))));
        Assert.That(ex!.Message, Does.Contain("expects 5 input features").And.Contain("has 6"));
    }

    [TestCase(5, 10)]
    [TestCase(64, 100)]
    public void SoftmaxCrossEntropyLossAccuracyAndGradient(int n, int k)
    {
        var z = Rng.Floats(n * k, -4, 4);
        var labels = Rng.Ints(n, 0, k);
        var stats0 = Rng.Floats(2, 0, 10);
        var stats = Put(stats0, 2);
        var dz = Poisoned(n, k);
        B.SoftmaxCrossEntropy(Put(z, n, k), PutInts(labels), dz, stats);
        var zd = Close.ToDouble(z);
        double loss = Reference.SoftmaxCrossEntropy(zd, labels, n, k);
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            int arg = 0;
            for (int j = 1; j < k; j++) if (z[i * k + j] > z[i * k + arg]) arg = j;
            if (arg == labels[i]) correct++;
        }
        var s = Get(stats);
        Assert.That(s[0], Is.EqualTo(stats0[0] + loss * n).Within(1e-4 * n), $"loss sum ({Rng})");
        Assert.That(s[1], Is.EqualTo(stats0[1] + correct), "correct count");
        var num = Reference.NumericGradient(v => Reference.SoftmaxCrossEntropy(v, labels, n, k), zd);
        Close.Check(Get(dz), num, 1e-6, 1e-4, $"dlogits ({Rng})");
    }

    [Test]
    public void SoftmaxCrossEntropyWithoutGradientOnlyCounts()
    {
        int n = 37, k = 3;
        var z = Rng.Floats(n * k, -3, 3);
        var labels = Rng.Ints(n, 0, k);
        var stats0 = Rng.Floats(2, 0, 10);
        var stats = Put(stats0, 2);
        B.SoftmaxCrossEntropy(Put(z, n, k), PutInts(labels), default, stats);
        double loss = Reference.SoftmaxCrossEntropy(Close.ToDouble(z), labels, n, k);
        int correct = Enumerable.Range(0, n).Count(i => Enumerable.Range(0, k).MaxBy(j => z[i * k + j]) == labels[i]);
        var s = Get(stats);
        Assert.That(s[0], Is.EqualTo(stats0[0] + loss * n).Within(1e-4 * n), $"loss sum, added to what was there ({Rng})");
        Assert.That(s[1], Is.EqualTo(stats0[1] + correct), $"correct count, added to what was there ({Rng})");
    }

    [Test]
    public void SoftmaxRowsSumToOne()
    {
        int n = 7, k = 10;
        var z = Rng.Floats(n * k, -5, 5);
        var p = Poisoned(n, k);
        B.Softmax(Put(z, n, k), p);
        var pv = Get(p);
        for (int i = 0; i < n; i++)
        {
            double max = z.Skip(i * k).Take(k).Max();
            double sum = z.Skip(i * k).Take(k).Sum(v => Math.Exp(v - max));
            for (int j = 0; j < k; j++)
                Assert.That(pv[i * k + j], Is.EqualTo(Math.Exp(z[i * k + j] - max) / sum).Within(1e-6));
        }
    }

    [Test]
    public void LabelsOutOfRangeAreRejected()
    {
        if (B is not CudaSwa.Cpu.CpuBackend) Assert.Ignore("The CUDA kernel cannot throw; labels are validated when a dataset is loaded.");
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            B.SoftmaxCrossEntropy(Put(Rng.Floats(6), 2, 3), PutInts([0, 3]), default, Put(new float[2], 2)));
        Assert.That(ex!.Message, Does.Contain("Label 3 at row 1"));
    }
}
