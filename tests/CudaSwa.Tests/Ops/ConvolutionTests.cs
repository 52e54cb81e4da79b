using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// Convolution forward against a direct float64 loop, and both backward passes against central
/// finite differences of that float64 reference (h = 1e-5, so the reference gradient is accurate
/// to ~1e-9 and the tolerance only has to cover float32 rounding in the op under test).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class ConvolutionTests(string backend) : BackendTest(backend)
{
    // (n, c, h, w, k, r, stride, pad): every kind of convolution the models use.
    private static readonly int[][] Shapes =
    [
        [2, 3, 6, 6, 4, 3, 1, 1],   // 3x3, stride 1, pad 1
        [2, 3, 7, 7, 5, 3, 2, 1],   // 3x3, stride 2 (odd input)
        [2, 4, 5, 5, 3, 1, 1, 0],   // 1x1 pointwise
        [3, 4, 6, 6, 6, 1, 2, 0],   // 1x1 stride 2 projection shortcut
        [1, 2, 5, 5, 3, 3, 1, 0],   // no padding, one image
    ];

    private static IEnumerable<int> ShapeIndex() => Enumerable.Range(0, Shapes.Length);

    [TestCaseSource(nameof(ShapeIndex))]
    public void ForwardMatchesDirectLoop(int s)
    {
        var (n, c, h, w, k, r, stride, pad) = Unpack(s);
        var x = Rng.Floats(n * c * h * w);
        var wt = Rng.Floats(k * c * r * r);
        int p = (h + 2 * pad - r) / stride + 1;
        var y = Poisoned(n, k, p, p);
        B.ConvolutionForward(Put(x, n, c, h, w), Put(wt, k, c, r, r), y, new ConvSpec(stride, pad));
        var expected = Reference.Conv(Close.ToDouble(x), n, c, h, w, Close.ToDouble(wt), k, r, stride, pad);
        Close.Check(Get(y), expected, 1e-5 * Tol, 1e-5 * Tol, $"conv forward {Describe(s)} ({Rng})");
    }

    [TestCaseSource(nameof(ShapeIndex))]
    public void BackwardDataMatchesFiniteDifferences(int s)
    {
        var (n, c, h, w, k, r, stride, pad) = Unpack(s);
        var x = Rng.Floats(n * c * h * w);
        var wt = Rng.Floats(k * c * r * r);
        int p = (h + 2 * pad - r) / stride + 1;
        var dy = Rng.Floats(n * k * p * p);
        var dx = Poisoned(n, c, h, w);
        B.ConvolutionBackwardData(Put(dy, n, k, p, p), Put(wt, k, c, r, r), dx, new ConvSpec(stride, pad), accumulate: false);
        double[] wd = Close.ToDouble(wt), dyd = Close.ToDouble(dy);
        var numeric = Reference.NumericGradient(xv => Reference.Dot(dyd, Reference.Conv(xv, n, c, h, w, wd, k, r, stride, pad)), Close.ToDouble(x));
        Close.Check(Get(dx), numeric, 1e-5 * Tol, 1e-4, $"conv dx {Describe(s)} ({Rng})");
    }

    [TestCaseSource(nameof(ShapeIndex))]
    public void BackwardFilterAccumulatesFiniteDifferenceGradient(int s)
    {
        var (n, c, h, w, k, r, stride, pad) = Unpack(s);
        var x = Rng.Floats(n * c * h * w);
        var wt = Rng.Floats(k * c * r * r);
        int p = (h + 2 * pad - r) / stride + 1;
        var dy = Rng.Floats(n * k * p * p);
        var before = Rng.Floats(k * c * r * r);
        var dw = Put(before, k, c, r, r);
        B.ConvolutionBackwardFilter(Put(x, n, c, h, w), Put(dy, n, k, p, p), dw, new ConvSpec(stride, pad));
        double[] xd = Close.ToDouble(x), dyd = Close.ToDouble(dy);
        var numeric = Reference.NumericGradient(wv => Reference.Dot(dyd, Reference.Conv(xd, n, c, h, w, wv, k, r, stride, pad)), Close.ToDouble(wt));
        for (int i = 0; i < numeric.Length; i++) numeric[i] += before[i]; // parameter gradients accumulate
        Close.Check(Get(dw), numeric, 1e-5 * Tol, 1e-4, $"conv dw {Describe(s)} ({Rng})");
    }

    // Layer-sized shapes (each backend's fast paths: the CPU's direct 3x3 kernel, im2col+GEMM for
    // strided and pointwise convs) against direct float64 loops for all three passes. The FD
    // tests above establish the loops; these check the fast code at the sizes the models use,
    // including channel counts that are not multiples of the kernels' register tiles.
    private static readonly int[][] LayerShapes =
    [
        [3, 16, 32, 32, 16, 3, 1, 1],
        [2, 3, 32, 32, 12, 3, 1, 1],
        [2, 20, 8, 8, 24, 3, 1, 1],
        [2, 16, 16, 16, 32, 3, 2, 1],
        [3, 5, 12, 12, 12, 3, 2, 1],    // stride 2 with channel counts off the register-tile sizes
        [2, 16, 16, 16, 32, 1, 2, 0],
        [2, 24, 8, 8, 40, 1, 1, 0],
        [2, 8, 32, 32, 16, 3, 2, 1],    // stride 2 on rows of 32 (split a vector at a time)
        [2, 8, 32, 32, 16, 1, 2, 0],
    ];

    private static IEnumerable<int> LayerShapeIndex() => Enumerable.Range(0, LayerShapes.Length);

    [TestCaseSource(nameof(LayerShapeIndex))]
    public void LayerSizedPassesMatchDirectLoops(int s)
    {
        var a = LayerShapes[s];
        int n = a[0], c = a[1], h = a[2], w = a[3], k = a[4], r = a[5], stride = a[6], pad = a[7];
        int p = (h + 2 * pad - r) / stride + 1;
        var spec = new ConvSpec(stride, pad);
        var x = Rng.Floats(n * c * h * w);
        var wt = Rng.Floats(k * c * r * r);
        var dy = Rng.Floats(n * k * p * p);
        double[] xd = Close.ToDouble(x), wd = Close.ToDouble(wt), dyd = Close.ToDouble(dy);
        string what = $"({string.Join(",", a)}) {Rng}";
        double atol = 1e-5 * Math.Sqrt(c * r * r) * Tol;

        var y = Poisoned(n, k, p, p);
        B.ConvolutionForward(Put(x, n, c, h, w), Put(wt, k, c, r, r), y, spec);
        Close.Check(Get(y), Reference.Conv(xd, n, c, h, w, wd, k, r, stride, pad), atol, 1e-5, "forward " + what);

        var dx = Poisoned(n, c, h, w);
        B.ConvolutionBackwardData(Put(dy, n, k, p, p), Put(wt, k, c, r, r), dx, spec, false);
        Close.Check(Get(dx), Reference.ConvBackwardData(dyd, n, c, h, w, wd, k, r, stride, pad), 1e-5 * Math.Sqrt(k * r * r) * Tol, 1e-5, "backward data " + what);

        var dw = Put(new float[k * c * r * r], k, c, r, r);
        B.ConvolutionBackwardFilter(Put(x, n, c, h, w), Put(dy, n, k, p, p), dw, spec);
        Close.Check(Get(dw), Reference.ConvBackwardFilter(xd, n, c, h, w, dyd, k, r, stride, pad), 1e-5 * Math.Sqrt(n * p * p) * Tol, 1e-5, "backward filter " + what);
    }

    private static IEnumerable<TestCaseData> LayerShapeAndCpuAlgorithm() =>
        from s in Enumerable.Range(0, LayerShapes.Length)
        from a in new[] { "gemm", "direct", "winograd2", "winograd4" }
        select new TestCaseData(s, a);

    /// <summary>
    /// Each CPU algorithm pinned on the same layer shapes (im2col + GEMM serves every shape; the direct
    /// kernels and Winograd the shapes they apply to, the rest falling back to the default choice).
    /// Winograd F(4x4) rounds more: its bound is 8x wider (measured errors in docs/benchmarks.md).
    /// </summary>
    [TestCaseSource(nameof(LayerShapeAndCpuAlgorithm))]
    public void LayerSizedPassesMatchDirectLoopsWithEachCpuAlgorithm(int s, string algorithm)
    {
        if (B is not CudaSwa.Cpu.CpuBackend cpu) { Assert.Ignore("CPU-only choice of algorithm."); return; }
        cpu.Convolution.Choice.Override = algorithm;
        try
        {
            if (algorithm == "winograd4") ToleranceScale = 8;
            LayerSizedPassesMatchDirectLoops(s);
        }
        finally
        {
            ToleranceScale = 1;
            cpu.Convolution.Choice.Override = null;
        }
    }

    [Test]
    public void BackwardDataAccumulatesWhenAsked()
    {
        var (n, c, h, w, k, r, stride, pad) = Unpack(0);
        var wt = Rng.Floats(k * c * r * r);
        var dy = Rng.Floats(n * k * h * w);
        var first = B.AllocateTensor(TensorShape.Nchw(n, c, h, w));
        B.ConvolutionBackwardData(Put(dy, n, k, h, w), Put(wt, k, c, r, r), first, new ConvSpec(stride, pad), false);
        var prior = Rng.Floats(n * c * h * w);
        var acc = Put(prior, n, c, h, w);
        B.ConvolutionBackwardData(Put(dy, n, k, h, w), Put(wt, k, c, r, r), acc, new ConvSpec(stride, pad), true);
        var f = Get(first);
        Close.Check(Get(acc), prior.Select((v, i) => (double)v + f[i]).ToArray(), 1e-6, 1e-6, $"accumulate ({Rng})");
    }

    [Test]
    public void BiasForwardAndBackward()
    {
        int n = 3, c = 4, hw = 5;
        var y0 = Rng.Floats(n * c * hw);
        var bias = Rng.Floats(c);
        var y = Put(y0, n, c, hw, 1);
        B.AddChannelBias(y, Put(bias, c));
        Close.Check(Get(y), y0.Select((v, i) => (double)v + bias[(i / hw) % c]).ToArray(), 1e-6, 1e-6, "bias add");
        var dy = Rng.Floats(n * c * hw);
        var prior = Rng.Floats(c);
        var db = Put(prior, c);
        B.ChannelBiasBackward(Put(dy, n, c, hw, 1), db);
        var expected = new double[c];
        for (int i = 0; i < dy.Length; i++) expected[(i / hw) % c] += dy[i];
        for (int i = 0; i < c; i++) expected[i] += prior[i];
        Close.Check(Get(db), expected, 1e-5, 1e-5, $"bias backward ({Rng})");
    }

    [Test]
    public void RejectsMismatchedShapesWithAClearMessage()
    {
        var x = B.AllocateTensor(TensorShape.Nchw(2, 3, 8, 8));
        var w = B.AllocateTensor(TensorShape.Nchw(4, 5, 3, 3));
        var y = B.AllocateTensor(TensorShape.Nchw(2, 4, 8, 8));
        var ex = Assert.Throws<ArgumentException>(() => B.ConvolutionForward(x, w, y, new ConvSpec(1, 1)));
        Assert.That(ex!.Message, Does.Contain("expects 5 input channels").And.Contain("has 3"));
        var w2 = B.AllocateTensor(TensorShape.Nchw(4, 3, 3, 3));
        var wrongY = B.AllocateTensor(TensorShape.Nchw(2, 4, 4, 4));
        var ex2 = Assert.Throws<ArgumentException>(() => B.ConvolutionForward(x, w2, wrongY, new ConvSpec(1, 1)));
        Assert.That(ex2!.Message, Does.Contain("expected (2, 4, 8, 8)"));
    }

    private static (int, int, int, int, int, int, int, int) Unpack(int s)
    {
        var a = Shapes[s];
        return (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
    }

    private static string Describe(int s) => string.Join(",", Shapes[s]);
}
