using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>ReLU, residual add, gradient accumulation, pooling and dropout against references and finite differences.</summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class PointwiseTests(string backend) : BackendTest(backend)
{
    [TestCase(1)]
    [TestCase(17)]
    [TestCase(1000)]
    [TestCase(70_001)]
    public void ReluForwardAndBackward(int length)
    {
        var x = Rng.FloatsAwayFromZero(length, 1e-3f);
        var y = Poisoned(length);
        B.ReluForward(Put(x, length), y);
        var yv = Get(y);
        Close.Check(yv, Reference.Relu(Close.ToDouble(x)), 0, 0, "relu");
        var dy = Rng.Floats(length);
        var dx = Poisoned(length);
        B.ReluBackward(y, Put(dy, length), dx, false);
        // ReLU is elementwise, so its finite-difference gradient is one central difference per element
        // (away from the kink the derivative is exactly 0 or 1).
        const double h = 1e-4;
        var num = x.Select((v, i) => dy[i] * (Math.Max(v + h, 0) - Math.Max(v - h, 0)) / (2 * h)).ToArray();
        Close.Check(Get(dx), num, 1e-6, 1e-6, $"relu backward ({Rng})");
        var prior = Rng.Floats(length);
        var acc = Put(prior, length);
        B.ReluBackward(y, Put(dy, length), acc, true);
        Close.Check(Get(acc), num.Select((g, i) => g + prior[i]).ToArray(), 1e-6, 1e-6, "relu backward accumulate");
    }

    [Test]
    public void AddAndAccumulate()
    {
        int n = 3333;
        var a = Rng.Floats(n);
        var b = Rng.Floats(n);
        var y = Poisoned(n);
        B.Add(Put(a, n), Put(b, n), y);
        Close.Check(Get(y), a.Select((v, i) => (double)v + b[i]).ToArray(), 1e-7, 1e-7, "add");
        var d = Poisoned(n);
        B.AccumulateGradient(Put(a, n), d, false);
        Assert.That(Get(d), Is.EqualTo(a));
        B.AccumulateGradient(Put(b, n), d, true);
        Close.Check(Get(d), a.Select((v, i) => (double)v + b[i]).ToArray(), 1e-7, 1e-7, "accumulate");
    }

    [Test]
    public void GlobalAveragePoolForwardAndBackward()
    {
        int n = 2, c = 3, h = 4, w = 5;
        var x = Rng.Floats(n * c * h * w);
        var y = Poisoned(n, c);
        B.GlobalAveragePoolForward(Put(x, n, c, h, w), y);
        Close.Check(Get(y), Reference.GlobalAvgPool(Close.ToDouble(x), n * c, h * w), 1e-6, 1e-6, "gap");
        var dy = Rng.Floats(n * c);
        var dx = Poisoned(n, c, h, w);
        B.GlobalAveragePoolBackward(Put(dy, n, c), dx, false);
        var num = Reference.NumericGradient(v => Reference.Dot(Close.ToDouble(dy), Reference.GlobalAvgPool(v, n * c, h * w)), Close.ToDouble(x));
        Close.Check(Get(dx), num, 1e-6, 1e-5, $"gap backward ({Rng})");
    }

    /// <summary>Odd sizes leave a last row/column no window covers: its gradient must be 0, also over a poisoned dx.</summary>
    [TestCase(6, 4)]
    [TestCase(7, 5)]
    [TestCase(5, 8)]
    public void MaxPoolForwardAndBackward(int h, int w)
    {
        int n = 2, c = 2;
        // Distinct values spaced well apart, so finite differences never swap the maximum.
        var x = Enumerable.Range(0, n * c * h * w).Select(i => i * 0.01f).OrderBy(_ => Rng.Random.Next()).ToArray();
        var y = Poisoned(n, c, h / 2, w / 2);
        B.MaxPoolForward(Put(x, n, c, h, w), y);
        Close.Check(Get(y), Reference.MaxPool2(Close.ToDouble(x), n * c, h, w), 0, 0, "maxpool");
        var dy = Rng.Floats(n * c * (h / 2) * (w / 2));
        var dx = Poisoned(n, c, h, w);
        B.MaxPoolBackward(Put(x, n, c, h, w), Put(dy, n, c, h / 2, w / 2), dx, false);
        var num = Reference.NumericGradient(v => Reference.Dot(Close.ToDouble(dy), Reference.MaxPool2(v, n * c, h, w)), Close.ToDouble(x), 1e-4);
        Close.Check(Get(dx), num, 1e-6, 1e-5, $"maxpool backward {h}x{w} ({Rng})");
        var prior = Rng.Floats(x.Length);
        var acc = Put(prior, n, c, h, w);
        B.MaxPoolBackward(Put(x, n, c, h, w), Put(dy, n, c, h / 2, w / 2), acc, true);
        Close.Check(Get(acc), num.Select((g, i) => g + prior[i]).ToArray(), 1e-6, 1e-5, $"maxpool backward accumulate {h}x{w} ({Rng})");
    }

    /// <summary>
    /// Dropout by its contract, with no call to the generator behind it: every output is 0 or x/(1-p);
    /// the share dropped is p within 4.5 standard errors; neighbouring elements (within a draw of four
    /// and across draws) are dropped independently; the same seed and stream give the same mask and
    /// another stream or seed another one; backward keeps exactly the elements forward kept.
    /// </summary>
    [Test]
    public void DropoutKeepsElementsIndependentlyWithProbabilityOneMinusPAndBackwardUsesTheSameMask()
    {
        int n = 200_000;
        float p = 0.3f;
        ulong seed = (ulong)Rng.Random.NextInt64(), stream = (ulong)Rng.Random.Next();
        var x = Rng.FloatsAwayFromZero(n, 0.1f);
        var tx = Put(x, n);
        bool[] Mask(ulong s, ulong st)
        {
            var y = Poisoned(n);
            B.DropoutForward(tx, y, p, s, st);
            var yv = Get(y);
            var keep = new bool[n];
            for (int i = 0; i < n; i++)
            {
                keep[i] = yv[i] != 0;
                if (keep[i]) Assert.That(yv[i], Is.EqualTo(x[i] / (1 - p)).Within(2e-7 * Math.Abs(x[i] / (1 - p))), $"a kept element is x/(1-p): element {i} ({Rng})");
            }
            return keep;
        }
        var mask = Mask(seed, stream);
        double q = 1 - p;
        double Share(Func<int, bool> pick, int count) => Enumerable.Range(0, count).Count(pick) / (double)count;
        void Near(double got, double expected, int count, string what) =>
            Assert.That(got, Is.EqualTo(expected).Within(4.5 * Math.Sqrt(expected * (1 - expected) / count)), $"{what} ({Rng})");
        Near(Share(i => mask[i], n), q, n, "share kept");
        foreach (int lag in new[] { 1, 2, 3, 4, 5, 4096 })
            Near(Share(i => mask[i] && mask[i + lag], n - lag), q * q, n - lag, $"pairs {lag} apart both kept (independence)");
        Assert.That(Mask(seed, stream), Is.EqualTo(mask), "the same seed and stream give the same mask");
        var otherStream = Mask(seed, stream + 1);
        var otherSeed = Mask(seed ^ 0x9E3779B97F4A7C15UL, stream);
        Near(Share(i => otherStream[i] == mask[i], n), q * q + p * p, n, "another stream: agreement as for independent masks");
        Near(Share(i => otherSeed[i] == mask[i], n), q * q + p * p, n, "another seed: agreement as for independent masks");

        var dy = Rng.Floats(n);
        var dx = Poisoned(n);
        B.DropoutBackward(Put(dy, n), dx, p, seed, stream, false);
        var dxv = Get(dx);
        for (int i = 0; i < n; i++)
            Assert.That(dxv[i], Is.EqualTo(mask[i] ? dy[i] / (1 - p) : 0f).Within(1e-6 * (1 + Math.Abs(dy[i]))), $"grad element {i} ({Rng})");
    }
}
