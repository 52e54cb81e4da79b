using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// The fused ops against the ops they fuse, run one after the other on the same backend: batch
/// norm + ReLU (training, inference, backward), residual add + ReLU (forward, backward with every
/// accumulate combination) give the same bits; the folded bias + ReLU and the batch-norm fold
/// against float closed forms.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class FusedOpsTests(string backend) : BackendTest(backend)
{
    private const double Eps = 1e-5;

    private static void Same(float[] actual, float[] expected, string what) => Emulation.EmulatedKernelTests.Same(actual, expected, what);

    [TestCase(4, 3, 5, 5)]
    [TestCase(2, 16, 8, 8)]
    public void BatchNormReluIsBatchNormThenRelu(int n, int c, int h, int w)
    {
        var x = Rng.Floats(n * c * h * w, -2, 3);
        var gamma = Rng.Floats(c, 0.5f, 1.5f);
        var beta = Rng.Floats(c, -1, 1);
        var rm0 = Rng.Floats(c);
        var rv0 = Rng.Floats(c, 0.5f, 2f);
        Tensor X() => Put(x, n, c, h, w);

        // Training forward: output, running statistics and saved statistics.
        var (y1, rm1, rv1, sm1, si1) = (Poisoned(n, c, h, w), Put(rm0, c), Put(rv0, c), Poisoned(c), Poisoned(c));
        B.BatchNormReluForwardTraining(X(), y1, Put(gamma, c), Put(beta, c), rm1, rv1, 0.1, Eps, sm1, si1);
        var (y2, rm2, rv2, sm2, si2) = (Poisoned(n, c, h, w), Put(rm0, c), Put(rv0, c), Poisoned(c), Poisoned(c));
        B.BatchNormForwardTraining(X(), y2, Put(gamma, c), Put(beta, c), rm2, rv2, 0.1, Eps, sm2, si2);
        B.ReluForward(y2, y2);
        Same(Get(y1), Get(y2), $"training output ({Rng})");
        Same(Get(rm1), Get(rm2), "running mean");
        Same(Get(rv1), Get(rv2), "running variance");
        Assert.That(Get(y1).Count(v => v == 0), Is.GreaterThan(0).And.LessThan(x.Length), "the ReLU clips some values, not all");

        // Backward through both, into a gradient that already holds something (accumulate) and not.
        var dy = Rng.Floats(x.Length);
        foreach (bool accumulate in new[] { false, true })
        {
            var prior = Rng.Floats(x.Length);
            var (dx1, dg1, db1) = (Put(prior, n, c, h, w), Put(new float[c], c), Put(new float[c], c));
            B.BatchNormReluBackward(X(), y1, Put(dy, n, c, h, w), Put(gamma, c), sm1, si1, dx1, dg1, db1, Eps, accumulate);
            var (dx2, dg2, db2) = (Put(prior, n, c, h, w), Put(new float[c], c), Put(new float[c], c));
            var masked = Poisoned(n, c, h, w);
            B.ReluBackward(y2, Put(dy, n, c, h, w), masked, accumulate: false);
            B.BatchNormBackward(X(), masked, Put(gamma, c), sm2, si2, dx2, dg2, db2, Eps, accumulate);
            Same(Get(dx1), Get(dx2), $"dx accumulate={accumulate} ({Rng})");
            Same(Get(dg1), Get(dg2), $"dgamma accumulate={accumulate}");
            Same(Get(db1), Get(db2), $"dbeta accumulate={accumulate}");
        }

        // Inference forward.
        var yi1 = Poisoned(n, c, h, w);
        B.BatchNormReluForwardInference(X(), yi1, Put(gamma, c), Put(beta, c), Put(rm0, c), Put(rv0, c), Eps);
        var yi2 = Poisoned(n, c, h, w);
        B.BatchNormForwardInference(X(), yi2, Put(gamma, c), Put(beta, c), Put(rm0, c), Put(rv0, c), Eps);
        B.ReluForward(yi2, yi2);
        Same(Get(yi1), Get(yi2), $"inference output ({Rng})");
    }

    [TestCase(1)]
    [TestCase(1000)]
    [TestCase(70_001)]
    public void AddReluIsAddThenReluBothWays(int n)
    {
        var a = Rng.Floats(n, -1, 1);
        var b = Rng.Floats(n, -1, 1);
        a[0] = float.NaN;
        var y1 = Poisoned(n);
        B.AddRelu(Put(a, n), Put(b, n), y1);
        var y2 = Poisoned(n);
        B.Add(Put(a, n), Put(b, n), y2);
        B.ReluForward(y2, y2);
        var y = Get(y1);
        Same(y, Get(y2), $"forward ({Rng})");
        Assert.That(float.IsNaN(y[0]), Is.True, "NaN stays NaN through the fused ReLU");

        var yClean = y.Select(v => float.IsNaN(v) ? 1f : v).ToArray();
        var dy = Rng.Floats(n);
        foreach (bool accA in new[] { false, true })
        foreach (bool accB in new[] { false, true })
        {
            var pa = Rng.Floats(n);
            var pb = Rng.Floats(n);
            var (da1, db1) = (Put(pa, n), Put(pb, n));
            B.AddReluBackward(Put(yClean, n), Put(dy, n), da1, accA, db1, accB);
            var (da2, db2) = (Put(pa, n), Put(pb, n));
            var g = Poisoned(n);
            B.ReluBackward(Put(yClean, n), Put(dy, n), g, accumulate: false);
            B.AccumulateGradient(g, da2, accA);
            B.AccumulateGradient(g, db2, accB);
            Same(Get(da1), Get(da2), $"da accumulateA={accA} accumulateB={accB} ({Rng})");
            Same(Get(db1), Get(db2), $"db accumulateA={accA} accumulateB={accB}");
        }
    }

    [Test]
    public void ChannelBiasReluIsMaxOfTheSumAndZero()
    {
        int n = 3, c = 5, hw = 37;
        var y = Rng.Floats(n * c * hw, -1, 1);
        var bias = Rng.Floats(c, -0.5f, 0.5f);
        var t = Put(y, n, c, hw, 1);
        B.AddChannelBiasRelu(t, Put(bias, c));
        var expected = y.Select((v, i) => MathF.Max(v + bias[(i / hw) % c], 0f)).ToArray(); // one float add, exact either way
        Same(Get(t), expected, $"bias + ReLU ({Rng})");
    }

    // Shapes the CPU's direct kernels run (3x3 s1/s2, 1x1 s2) and one they leave to im2col (5x5).
    [TestCase(2, 16, 12, 12, 16, 3, 1, 1)]
    [TestCase(3, 8, 9, 9, 24, 3, 2, 1)]
    [TestCase(2, 16, 8, 8, 32, 1, 2, 0)]
    [TestCase(2, 3, 11, 11, 5, 5, 1, 2)]
    public void ConvolutionBiasActivationIsTheConvolutionThenItsBiasPass(int n, int c, int h, int w, int k, int r, int stride, int pad)
    {
        var x = Rng.Floats(n * c * h * w);
        var wt = Rng.Floats(k * c * r * r);
        var bias = Rng.Floats(k);
        var spec = new ConvSpec(stride, pad);
        int p = (h + 2 * pad - r) / stride + 1;
        foreach (bool relu in new[] { false, true })
        {
            var apart = Poisoned(n, k, p, p);
            B.ConvolutionForward(Put(x, n, c, h, w), Put(wt, k, c, r, r), apart, spec);
            if (relu) B.AddChannelBiasRelu(apart, Put(bias, k));
            else B.AddChannelBias(apart, Put(bias, k));
            var fused = Poisoned(n, k, p, p);
            B.ConvolutionBiasActivationForward(Put(x, n, c, h, w), Put(wt, k, c, r, r), Put(bias, k), relu, fused, spec);
            Assert.That(Get(fused), Is.EqualTo(Get(apart)), $"relu={relu}: the same bits as the convolution and its bias pass ({Rng})");
        }
    }

    [TestCase(3, false)]
    [TestCase(1, false)]
    [TestCase(3, true)]
    public void FoldingScalesEachFilterAndTurnsTheShiftIntoABias(int kernel, bool convolutionBias)
    {
        int k = 6, c = 4;
        var w = Rng.Floats(k * c * kernel * kernel, -1, 1);
        var gamma = Rng.Floats(k, 0.5f, 1.5f);
        var beta = Rng.Floats(k, -1, 1);
        var mean = Rng.Floats(k, -1, 1);
        var variance = Rng.Floats(k, 0.1f, 2f);
        var bias = convolutionBias ? Rng.Floats(k, -1, 1) : new float[k];
        var fw = Poisoned(k, c, kernel, kernel);
        var fb = Poisoned(k);
        B.FoldBatchNorm(Put(w, k, c, kernel, kernel), convolutionBias ? Put(bias, k) : default, Put(gamma, k), Put(beta, k), Put(mean, k), Put(variance, k), Eps, fw, fb);
        int per = c * kernel * kernel;
        double Scale(int o) => gamma[o] / Math.Sqrt(variance[o] + Eps);
        Close.Check(Get(fw), w.Select((v, i) => v * Scale(i / per)).ToArray(), 1e-7, 1e-6, $"folded weights ({Rng})");
        Close.Check(Get(fb), Enumerable.Range(0, k).Select(o => beta[o] + (bias[o] - mean[o]) * Scale(o)).ToArray(), 1e-6, 1e-6, "folded bias");
    }
}
