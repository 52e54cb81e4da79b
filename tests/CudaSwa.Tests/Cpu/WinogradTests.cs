using System.Runtime.Intrinsics;
using CudaSwa.Cpu;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cpu;

/// <summary>
/// Winograd convolutions (F(2x2,3x3) and F(4x4,3x3)) against float64 direct loops, on every 3x3
/// stride-1 convolution shape of resnet20, resnet110 and wrn28x10, in all three passes; the
/// transform matrices against the correlation they must compute; and the choice of algorithm.
///
/// Error bound: inputs uniform in [-1, 1], so a sum of L products has a scale of about sqrt(L);
/// every element must be within Tolerance(m) * sqrt(L) of the float64 value (L = 9 C forward,
/// 9 K backward data, N H W backward filter). Measured worst ratios on the development machine:
/// see docs/benchmarks.md ("Winograd accuracy").
/// </summary>
public class WinogradTests
{
    /// <summary>Allowed error per sqrt(reduction length): F(2x2) rounds like direct; F(4x4)'s transforms scale values by up to 8 per axis.</summary>
    private static double Tolerance(int m) => m == 2 ? 4e-6 : 8e-5;

    private static readonly CudaSwa.Cpu.CpuBackend Cpu = new();

    private static IEnumerable<TestCaseData> ModelShapes()
    {
        var seen = new HashSet<(int, int, int, int)>();
        foreach (var model in new[] { "resnet20", "resnet110", "wrn28x10" })
        {
            using var net = ModelZoo.Create(model, 10, Cpu, 1);
            foreach (var conv in net.Layers.OfType<Conv2d>())
            {
                var g = conv.Geometry(1);
                if (!WinogradConvolution.Supports(g) || !seen.Add((g.C, g.H, g.W, g.K))) continue;
                foreach (int m in new[] { 2, 4 })
                    yield return new TestCaseData(m, g.C, g.H, g.W, g.K).SetName($"Winograd_F{m}x{m}_{model}_{g.C}x{g.H}x{g.W}to{g.K}_AllPassesMatchFloat64");
            }
        }
    }

    [TestCaseSource(nameof(ModelShapes))]
    public void Winograd_ModelShape(int m, int c, int h, int w, int k)
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("Winograd convolutions need AVX-512; this CPU has none.");
        // Small batches for the wide layers (the float64 reference is a scalar loop).
        int n = (long)c * k * h * w > 4_000_000 ? 2 : 3;
        CheckAllPasses(m, n, c, h, w, k);
    }

    /// <summary>Shapes off the tile and register sizes: odd sizes (partial tiles), channels not a multiple of 8, groups of images with a partial last group, both F(2x2) layouts (polyphase planes; rows of 16 or 32 read directly).</summary>
    [TestCase(2, 2, 5, 7, 9, 3)]
    [TestCase(4, 2, 5, 7, 9, 3)]
    [TestCase(2, 3, 3, 6, 6, 12)]
    [TestCase(4, 3, 3, 6, 6, 12)]
    [TestCase(2, 15, 8, 8, 8, 16)]
    [TestCase(4, 50, 4, 8, 8, 5)]
    [TestCase(2, 1, 1, 2, 2, 1)]
    [TestCase(4, 2, 4, 10, 3, 9)]
    [TestCase(2, 7, 5, 6, 32, 4)]    // rows of 32 read directly: groups of 3 images, the last partial
    [TestCase(2, 7, 3, 12, 16, 5)]   // rows of 16: groups of 6, the last partial
    [TestCase(2, 20, 9, 16, 8, 3)]   // rows of 8: groups of 18, the last partial
    public void Winograd_OddShapesMatchFloat64(int m, int n, int c, int h, int w, int k)
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("Winograd convolutions need AVX-512; this CPU has none.");
        CheckAllPasses(m, n, c, h, w, k);
    }

    private static void CheckAllPasses(int m, int n, int c, int h, int w, int k)
    {
        var rng = new Fresh();
        var g = new ConvGeometry(n, c, h, w, k, 3, 3, 1, 1);
        var alg = m == 2 ? ConvAlgorithm.Winograd2 : ConvAlgorithm.Winograd4;
        var x = rng.Floats(n * c * h * w);
        var wt = rng.Floats(k * c * 9);
        var dy = rng.Floats(n * k * h * w);
        double[] xd = Close.ToDouble(x), wd = Close.ToDouble(wt), dyd = Close.ToDouble(dy);
        string what = $"F({m}x{m}) n{n} {c}x{h}x{w}->{k} ({rng})";
        var conv = new CpuConvolution();
        double tol = Tolerance(m);

        var y = Tensor(Close.Poison(n * k * h * w), n, k, h, w);
        conv.RunForward(alg, Tensor(x, n, c, h, w), Tensor(wt, k, c, 3, 3), y, g);
        var yExpected = Reference.Conv(xd, n, c, h, w, wd, k, 3, 1, 1);
        Report("forward", what, Span(y), yExpected, 9 * c);
        Close.Check(Span(y), yExpected, tol * Math.Sqrt(9 * c), 0, "forward " + what);

        var dx = Tensor(Close.Poison(n * c * h * w), n, c, h, w);
        conv.RunBackwardData(alg, Tensor(dy, n, k, h, w), Tensor(wt, k, c, 3, 3), dx, g, accumulate: false);
        var dxExpected = Reference.ConvBackwardData(dyd, n, c, h, w, wd, k, 3, 1, 1);
        Report("backward data", what, Span(dx), dxExpected, 9 * k);
        Close.Check(Span(dx), dxExpected, tol * Math.Sqrt(9 * k), 0, "backward data " + what);

        var prior = rng.Floats(n * c * h * w);
        var dxAcc = Tensor(prior, n, c, h, w);
        conv.RunBackwardData(alg, Tensor(dy, n, k, h, w), Tensor(wt, k, c, 3, 3), dxAcc, g, accumulate: true);
        Close.Check(Span(dxAcc), dxExpected.Select((v, i) => v + prior[i]).ToArray(), tol * Math.Sqrt(9 * k) + 1e-6, 0, "backward data, accumulating " + what);

        var before = rng.Floats(k * c * 9);
        var dw = Tensor(before, k, c, 3, 3);
        conv.RunBackwardFilter(alg, Tensor(x, n, c, h, w), Tensor(dy, n, k, h, w), dw, g);
        var dwExpected = Reference.ConvBackwardFilter(xd, n, c, h, w, dyd, k, 3, 1, 1);
        Report("backward filter", what, Span(dw), dwExpected.Select((v, i) => v + before[i]).ToArray(), n * h * w);
        Close.Check(Span(dw), dwExpected.Select((v, i) => v + before[i]).ToArray(), tol * Math.Sqrt(n * h * w) + 1e-6, 0, "backward filter (accumulating) " + what);
    }

    /// <summary>Writes the worst error per sqrt(reduction length) to the test log (the figures docs/benchmarks.md quotes).</summary>
    private static void Report(string pass, string what, float[] actual, double[] expected, int length)
    {
        double worst = 0;
        for (int i = 0; i < actual.Length; i++) worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
        TestContext.Out.WriteLine($"winograd error {pass} {what}: max |error| / sqrt(L) = {worst / Math.Sqrt(length):E2}");
    }

    /// <summary>The float64 matrices compute a 1D correlation: A^T [(G g) ⊙ (B^T d)] = Σ_r d[i + r] g[r], for random d and g.</summary>
    [Test]
    public void Winograd_MatricesComputeTheCorrelation()
    {
        CheckMatrices<WinogradF2>();
        CheckMatrices<WinogradF4>();
    }

    private static void CheckMatrices<T>() where T : IWinogradTile
    {
        var rng = new Random(Environment.TickCount);
        int m = T.M, alpha = T.Alpha;
        for (int trial = 0; trial < 20; trial++)
        {
            var d = Enumerable.Range(0, alpha).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            var g = Enumerable.Range(0, 3).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            var product = new double[alpha];
            for (int j = 0; j < alpha; j++)
            {
                double gg = 0, dd = 0;
                for (int r = 0; r < 3; r++) gg += T.G[j, r] * g[r];
                for (int i = 0; i < alpha; i++) dd += T.BT[j, i] * d[i];
                product[j] = gg * dd;
            }
            for (int i = 0; i < m; i++)
            {
                double y = 0, expected = 0;
                for (int j = 0; j < alpha; j++) y += T.AT[i, j] * product[j];
                for (int r = 0; r < 3; r++) expected += d[i + r] * g[r];
                Assert.That(y, Is.EqualTo(expected).Within(1e-12), $"F({m},3) output {i}");
            }
        }
    }

    /// <summary>The vector transforms compute the float64 matrices: each applied to the unit vectors gives a column of its matrix.</summary>
    [Test]
    public unsafe void Winograd_VectorTransformsAreTheMatrices()
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("Winograd convolutions need AVX-512; this CPU has none.");
        CheckVectorForms<WinogradF2>();
        CheckVectorForms<WinogradF4>();
    }

    private static unsafe void CheckVectorForms<T>() where T : IWinogradTile
    {
        int m = T.M, alpha = T.Alpha;
        var input = stackalloc Vector512<float>[6];
        var output = stackalloc Vector512<float>[6];
        for (int unit = 0; unit < alpha; unit++)
        {
            for (int i = 0; i < alpha; i++) input[i] = Vector512.Create(i == unit ? 1f : 0f);
            T.Input(input, 1, output, 1);
            for (int i = 0; i < alpha; i++) Assert.That(output[i][7], Is.EqualTo((float)T.BT[i, unit]), $"F({m}) B^T[{i},{unit}]");
            T.Output(input, 1, output, 1);
            for (int i = 0; i < m; i++) Assert.That(output[i][3], Is.EqualTo((float)T.AT[i, unit]), $"F({m}) A^T[{i},{unit}]");
        }
        for (int unit = 0; unit < m; unit++)
        {
            for (int i = 0; i < m; i++) input[i] = Vector512.Create(i == unit ? 1f : 0f);
            T.OutputGradient(input, 1, output, 1);
            for (int j = 0; j < alpha; j++) Assert.That(output[j][15], Is.EqualTo((float)T.AT[unit, j]), $"F({m}) A[{j},{unit}]");
        }
    }

    /// <summary>Transformed filters are kept per weight version: new weights written by an op are used at once.</summary>
    [Test]
    public void Winograd_NewWeightsAreUsedAtOnce()
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("Winograd convolutions need AVX-512; this CPU has none.");
        var rng = new Fresh();
        int n = 2, c = 8, h = 8, w = 8, k = 8;
        var g = new ConvGeometry(n, c, h, w, k, 3, 3, 1, 1);
        var x = rng.Floats(n * c * h * w);
        var weights = Tensor(rng.Floats(k * c * 9), k, c, 3, 3);
        var conv = new CpuConvolution();
        var y = Tensor(new float[n * k * h * w], n, k, h, w);
        conv.RunForward(ConvAlgorithm.Winograd2, Tensor(x, n, c, h, w), weights, y, g);
        var second = rng.Floats(k * c * 9);
        Cpu.Upload<float>(second, weights);                       // an op that writes the weights
        conv.RunForward(ConvAlgorithm.Winograd2, Tensor(x, n, c, h, w), weights, y, g);
        Close.Check(Span(y), Reference.Conv(Close.ToDouble(x), n, c, h, w, Close.ToDouble(second), k, 3, 1, 1), Tolerance(2) * Math.Sqrt(9 * c), 0, $"after new weights ({rng})");
    }

    /// <summary>"measure" times every candidate once per shape and pass, keeps the fastest, and leaves the outputs as the chosen algorithm computes them (accumulating passes accumulate once).</summary>
    [Test]
    public void Winograd_MeasuredChoiceTimesEveryCandidateAndAccumulatesOnce()
    {
        if (!Vector512.IsHardwareAccelerated) Assert.Ignore("Winograd convolutions need AVX-512; this CPU has none.");
        var rng = new Fresh();
        int n = 2, c = 16, h = 8, w = 8, k = 16;
        var g = new ConvGeometry(n, c, h, w, k, 3, 3, 1, 1);
        var x = rng.Floats(n * c * h * w);
        var wt = rng.Floats(k * c * 9);
        var dy = rng.Floats(n * k * h * w);
        var before = rng.Floats(k * c * 9);
        string saved = ConvolutionChoice.Mode;
        ConvolutionChoice.Mode = "measure";
        try
        {
            var conv = new CpuConvolution();
            var dw = Tensor(before, k, c, 3, 3);
            var chosen = conv.BackwardFilter(Tensor(x, n, c, h, w), Tensor(dy, n, k, h, w), dw, g);
            var decision = conv.Choice.Decisions[(g, ConvPass.BackwardFilter)];
            Assert.That(decision.How, Is.EqualTo("measured"));
            Assert.That(decision.Timings.Select(t => t.Algorithm), Is.EquivalentTo(ConvolutionChoice.Candidates(g)));
            Assert.That(decision.Algorithm, Is.EqualTo(decision.Timings.MinBy(t => t.Seconds).Algorithm));
            Assert.That(chosen, Is.EqualTo(decision.Algorithm));
            var expected = Reference.ConvBackwardFilter(Close.ToDouble(x), n, c, h, w, Close.ToDouble(dy), k, 3, 1, 1);
            Close.Check(Span(dw), expected.Select((v, i) => v + before[i]).ToArray(), Tolerance(4) * Math.Sqrt(n * h * w) + 1e-6, 0, $"measured backward filter ({rng})");
        }
        finally { ConvolutionChoice.Mode = saved; }
    }

    /// <summary>The default rule is a function of the shape alone, and a pinned algorithm applies only where it can run.</summary>
    [Test]
    public void Winograd_RuleAndPinning()
    {
        var s1 = new ConvGeometry(4, 16, 8, 8, 16, 3, 3, 1, 1);
        var s2 = new ConvGeometry(4, 16, 8, 8, 32, 3, 3, 2, 1);
        string saved = ConvolutionChoice.Mode;
        try
        {
            ConvolutionChoice.Mode = "winograd4";
            var conv = new CpuConvolution();
            var y1 = Tensor(new float[4 * 16 * 64], 4, 16, 8, 8);
            var y2 = Tensor(new float[4 * 32 * 16], 4, 32, 4, 4);
            Assert.That(conv.Choice.For(s1, ConvPass.Forward, y1, _ => Assert.Fail("pinned: nothing timed")),
                Is.EqualTo(Vector512.IsHardwareAccelerated ? ConvAlgorithm.Winograd4 : ConvolutionChoice.ByRule(s1, ConvPass.Forward)));
            Assert.That(conv.Choice.For(s2, ConvPass.Forward, y2, _ => Assert.Fail("pinned: nothing timed")), Is.EqualTo(ConvolutionChoice.ByRule(s2, ConvPass.Forward)));
            Assert.That(conv.Choice.Decisions[(s2, ConvPass.Forward)].How, Is.EqualTo("rule"));
        }
        finally { ConvolutionChoice.Mode = saved; }
    }

    /// <summary>An unknown CUDASWA_CPU_CONV value is refused with the variable's name and the values it takes.</summary>
    [Test]
    public void Winograd_UnknownAlgorithmNameIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ConvolutionChoice.Parse("winograd3"));
        Assert.That(e!.Message, Does.Contain("CUDASWA_CPU_CONV").And.Contain("winograd3").And.Contain("winograd2"));
        Assert.That(ConvolutionChoice.Parse(" Measure "), Is.EqualTo("measure"));
        Assert.That(ConvolutionChoice.Parse(null), Is.EqualTo("rule"));
    }

    private static CudaSwa.Tensors.Tensor Tensor(float[] data, int n, int c, int h, int w)
    {
        var t = Cpu.AllocateTensor(TensorShape.Nchw(n, c, h, w));
        Cpu.Upload<float>(data, t);
        return t;
    }

    private static float[] Span(CudaSwa.Tensors.Tensor t)
    {
        var a = new float[t.Length];
        Cpu.Download<float>(t, a);
        return a;
    }
}
