using CudaSwa.Native;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// The stand-in cuDNN itself, called through the engine's binding table: each call against a
/// hand-computed case or a float64 closed form (convolution as a plain loop, its two backward
/// passes by the adjoint identity, batch norm by its defining moments and by finite differences),
/// and its strictness — the refusals the engine must never provoke, with cuDNN 9's status codes.
/// Ignored with the reason without clang++-14 or NVRTC.
/// </summary>
[Category("StandIn")]
[NonParallelizable]
public unsafe class StandInCudnnTests
{
    private StandInVendor _v = null!;
    private Fresh _rng = null!;

    [SetUp]
    public void Open()
    {
        _rng = new Fresh();
        _v = new StandInVendor();
    }

    [TearDown]
    public void Release() => _v?.Dispose();

    private CudnnApi Dnn => _v.Dnn;

    /// <summary>Cross-correlation (or convolution, with the filter flipped) as the definition reads, in float64.</summary>
    private static double[] ConvLoop(float[] x, int n, int c, int h, int w, float[] f, int k, int r, int s, int pad, int stride, int dil, bool flip)
    {
        int p = (h + 2 * pad - ((r - 1) * dil + 1)) / stride + 1, q = (w + 2 * pad - ((s - 1) * dil + 1)) / stride + 1;
        var y = new double[n * k * p * q];
        for (int b = 0; b < n; b++)
            for (int o = 0; o < k; o++)
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < q; j++)
                    {
                        double sum = 0;
                        for (int ch = 0; ch < c; ch++)
                            for (int u = 0; u < r; u++)
                                for (int v = 0; v < s; v++)
                                {
                                    int hi = i * stride - pad + u * dil, wi = j * stride - pad + v * dil;
                                    if (hi < 0 || hi >= h || wi < 0 || wi >= w) continue;
                                    int fu = flip ? r - 1 - u : u, fv = flip ? s - 1 - v : v;
                                    sum += (double)x[((b * c + ch) * h + hi) * w + wi] * f[((o * c + ch) * r + fu) * s + fv];
                                }
                        y[((b * k + o) * p + i) * q + j] = sum;
                    }
        return y;
    }

    [Test]
    public void StandInConvolutionForwardMatchesAHandComputedCase()
    {
        // x = 1..9 on a 3x3 map, w = [[1, 0], [0, -1]], no padding, stride 1: y[i,j] = x[i,j] - x[i+1,j+1] = -4 everywhere.
        var x = _v.Put([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        var w = _v.Put([1, 0, 0, -1]);
        var y = _v.Poisoned(4);
        var xd = _v.Tensor4d(1, 1, 3, 3); var wd = _v.Filter4d(1, 1, 2, 2); var yd = _v.Tensor4d(1, 1, 2, 2);
        var conv = _v.Convolution(0, 1);
        float alpha = 1, beta = 0;
        Dnn.Check(Dnn.cudnnConvolutionForward(_v.Cudnn, &alpha, xd, x, wd, w, conv, 0, 0, 0, &beta, yd, y));
        Assert.That(_v.Get(y, 4), Is.EqualTo(new float[] { -4, -4, -4, -4 }), "beta 0 never reads the NaNs in y");
        // Convolution mode flips the filter: y = -x[i,j] + x[i+1,j+1] = +4; alpha 0.5, beta 1 blends into the -4s: -4 + 2 = -2.
        var flipped = _v.Convolution(0, 1, mode: 0);
        alpha = 0.5f; beta = 1;
        Dnn.Check(Dnn.cudnnConvolutionForward(_v.Cudnn, &alpha, xd, x, wd, w, flipped, 0, 0, 0, &beta, yd, y));
        Assert.That(_v.Get(y, 4), Is.EqualTo(new float[] { -2, -2, -2, -2 }));
    }

    [TestCase(1, 1, 1)]
    [TestCase(1, 2, 1)]
    [TestCase(0, 2, 1)]
    [TestCase(2, 1, 2)]
    public void StandInConvolutionForwardMatchesTheDefinition(int pad, int stride, int dil)
    {
        int n = 2, c = 3, h = 7, w = 6, k = 4, r = 3, s = 3;
        int p = (h + 2 * pad - ((r - 1) * dil + 1)) / stride + 1, q = (w + 2 * pad - ((s - 1) * dil + 1)) / stride + 1;
        var hx = _rng.Floats(n * c * h * w); var hw = _rng.Floats(k * c * r * s); var hy = _rng.Floats(n * k * p * q);
        var x = _v.Put(hx); var f = _v.Put(hw); var y = _v.Put(hy);
        var conv = _v.Convolution(pad, stride, dil);
        float alpha = 1.5f, beta = -0.5f;
        Dnn.Check(Dnn.cudnnConvolutionForward(_v.Cudnn, &alpha, _v.Tensor4d(n, c, h, w), x, _v.Filter4d(k, c, r, s), f, conv, 2,
            _v.Put(new float[c * r * s * p * q]), (nuint)(c * r * s * p * q * 4), &beta, _v.Tensor4d(n, k, p, q), y));
        var expected = ConvLoop(hx, n, c, h, w, hw, k, r, s, pad, stride, dil, flip: false).Select((v, i) => 1.5 * v - 0.5 * hy[i]).ToArray();
        Close.Check(_v.Get(y, expected.Length), expected, 1e-6, 1e-6, $"forward ({_rng})");
    }

    /// <summary>
    /// Backward data and backward filter are the adjoints of the forward map: for any dy,
    /// &lt;conv(x, w), dy&gt; = &lt;x, dx(dy, w)&gt; = &lt;w, dw(x, dy)&gt; — an identity that needs no second implementation.
    /// </summary>
    [TestCase(1, 1)]
    [TestCase(1, 2)]
    [TestCase(0, 2)]
    public void StandInBackwardPassesAreTheAdjointsOfTheForward(int pad, int stride)
    {
        int n = 2, c = 3, h = 9, w = 8, k = 5, r = 3, s = 3; // more than 8x8: ALGO_1 is there
        int p = (h + 2 * pad - r) / stride + 1, q = (w + 2 * pad - s) / stride + 1;
        var hx = _rng.Floats(n * c * h * w); var hw = _rng.Floats(k * c * r * s); var hdy = _rng.Floats(n * k * p * q);
        var xd = _v.Tensor4d(n, c, h, w); var wd = _v.Filter4d(k, c, r, s); var yd = _v.Tensor4d(n, k, p, q);
        var conv = _v.Convolution(pad, stride);
        var x = _v.Put(hx); var f = _v.Put(hw); var dy = _v.Put(hdy);
        var dx = _v.Poisoned(n * c * h * w); var dw = _v.Poisoned(k * c * r * s);
        float one = 1, zero = 0;
        Dnn.Check(Dnn.cudnnConvolutionBackwardData(_v.Cudnn, &one, wd, f, yd, dy, conv, 1, 0, 0, &zero, xd, dx));
        nuint bytes;
        Dnn.Check(Dnn.cudnnGetConvolutionBackwardFilterWorkspaceSize(_v.Cudnn, xd, yd, conv, wd, 1, &bytes));
        var workspace = _v.Put(new float[Math.Max(1, (int)bytes / 4)]);
        Dnn.Check(Dnn.cudnnConvolutionBackwardFilter(_v.Cudnn, &one, xd, x, yd, dy, conv, 1, workspace, bytes, &zero, wd, dw));

        double forward = Reference.Dot(ConvLoop(hx, n, c, h, w, hw, k, r, s, pad, stride, 1, false), Close.ToDouble(hdy));
        double viaData = Reference.Dot(Close.ToDouble(hx), Close.ToDouble(_v.Get(dx, hx.Length)));
        double viaFilter = Reference.Dot(Close.ToDouble(hw), Close.ToDouble(_v.Get(dw, hw.Length)));
        Assert.That(viaData, Is.EqualTo(forward).Within(1e-5 * (1 + Math.Abs(forward))), $"<x, dx> = <y, dy> ({_rng})");
        Assert.That(viaFilter, Is.EqualTo(forward).Within(1e-5 * (1 + Math.Abs(forward))), $"<w, dw> = <y, dy> ({_rng})");

        // beta 1 accumulates: a second backward filter pass doubles dw.
        var once = _v.Get(dw, hw.Length);
        Dnn.Check(Dnn.cudnnConvolutionBackwardFilter(_v.Cudnn, &one, xd, x, yd, dy, conv, 1, workspace, bytes, &one, wd, dw));
        Close.Check(_v.Get(dw, hw.Length), once.Select(v => 2.0 * v).ToArray(), 1e-6, 1e-6, "beta = 1 accumulates");
    }

    [Test]
    public void StandInBiasCallsBroadcastAndSum()
    {
        int n = 3, c = 4, h = 2, w = 5;
        var hy = _rng.Floats(n * c * h * w); var hb = _rng.Floats(c);
        var y = _v.Put(hy); var b = _v.Put(hb);
        float one = 1, half = 0.5f;
        Dnn.Check(Dnn.cudnnAddTensor(_v.Cudnn, &one, _v.Tensor4d(1, c, 1, 1), b, &half, _v.Tensor4d(n, c, h, w), y));
        var expected = hy.Select((v, i) => 0.5 * v + hb[i / (h * w) % c]).ToArray();
        Close.Check(_v.Get(y, hy.Length), expected, 1e-6, 1e-6, "C = A (broadcast over n, h, w) + 0.5 C");

        var db = _v.Put(hb);
        Dnn.Check(Dnn.cudnnConvolutionBackwardBias(_v.Cudnn, &half, _v.Tensor4d(n, c, h, w), y, &one, _v.Tensor4d(1, c, 1, 1), db));
        var got = _v.Get(y, hy.Length);
        var sums = Enumerable.Range(0, c).Select(ch => hb[ch] + 0.5 * Enumerable.Range(0, n * h * w).Sum(j => (double)got[(j / (h * w) * c + ch) * h * w + j % (h * w)])).ToArray();
        Close.Check(_v.Get(db, c), sums, 1e-5, 1e-5, "db = 0.5 * sum over n, h, w + db");
    }

    [Test]
    public void StandInBatchNormTrainingMatchesItsDefinition()
    {
        int n = 3, c = 2, h = 3, w = 4, m = n * h * w;
        var hx = _rng.Floats(n * c * h * w, -2, 3); var gamma = _rng.Floats(c, 0.5f, 2); var beta = _rng.Floats(c);
        var rm0 = _rng.Floats(c); var rv0 = _rng.Floats(c, 0.5f, 2);
        var x = _v.Put(hx); var y = _v.Poisoned(hx.Length); var g = _v.Put(gamma); var bb = _v.Put(beta);
        var rm = _v.Put(rm0); var rv = _v.Put(rv0); var sm = _v.Poisoned(c); var si = _v.Poisoned(c);
        var d = _v.Tensor4d(n, c, h, w);
        float one = 1, zero = 0;
        double factor = 0.25, eps = 1e-3;
        Dnn.Check(Dnn.cudnnBatchNormalizationForwardTraining(_v.Cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, x, d, y, _v.Tensor4d(1, c, 1, 1), g, bb,
            factor, rm, rv, eps, sm, si));
        var outY = _v.Get(y, hx.Length);
        for (int ch = 0; ch < c; ch++)
        {
            var vals = Enumerable.Range(0, m).Select(j => (double)hx[(j / (h * w) * c + ch) * h * w + j % (h * w)]).ToArray();
            double mean = vals.Average(), biased = vals.Sum(v => (v - mean) * (v - mean)) / m;
            Assert.That(_v.Get(sm, c)[ch], Is.EqualTo(mean).Within(1e-6), "saved mean");
            Assert.That(_v.Get(si, c)[ch], Is.EqualTo(1 / Math.Sqrt(biased + eps)).Within(1e-5 / Math.Sqrt(biased + eps)), "saved 1/sqrt(biased var + eps)");
            Assert.That(_v.Get(rm, c)[ch], Is.EqualTo(0.75 * rm0[ch] + 0.25 * mean).Within(1e-6), "running mean");
            Assert.That(_v.Get(rv, c)[ch], Is.EqualTo(0.75 * rv0[ch] + 0.25 * biased * m / (m - 1)).Within(1e-5), "running variance: unbiased (M/(M-1))");
            // The output, normalised back, has the channel's mean beta and variance gamma^2 * var/(var+eps).
            var outs = Enumerable.Range(0, m).Select(j => (double)outY[(j / (h * w) * c + ch) * h * w + j % (h * w)]).ToArray();
            double om = outs.Average(), ov = outs.Sum(v => (v - om) * (v - om)) / m;
            Assert.That(om, Is.EqualTo(beta[ch]).Within(1e-5), $"output mean ({_rng})");
            Assert.That(ov, Is.EqualTo(gamma[ch] * gamma[ch] * biased / (biased + eps)).Within(1e-4), $"output variance ({_rng})");
        }

        // Inference with the running statistics just written.
        var yi = _v.Poisoned(hx.Length);
        Dnn.Check(Dnn.cudnnBatchNormalizationForwardInference(_v.Cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, x, d, yi, _v.Tensor4d(1, c, 1, 1), g, bb, rm, rv, eps));
        var erm = _v.Get(rm, c); var erv = _v.Get(rv, c);
        var expected = hx.Select((v, i) => { int ch = i / (h * w) % c; return gamma[ch] * (v - erm[ch]) / Math.Sqrt(erv[ch] + eps) + beta[ch]; }).ToArray();
        Close.Check(_v.Get(yi, hx.Length), expected, 1e-5, 1e-5, "inference: gamma (x - mean)/sqrt(var + eps) + beta");
    }

    /// <summary>Backward against central finite differences of L = sum(dy * y) through the training forward.</summary>
    [Test]
    public void StandInBatchNormBackwardMatchesFiniteDifferences()
    {
        int n = 2, c = 2, h = 2, w = 3, len = n * c * h * w;
        var hx = _rng.Floats(len, -2, 2); var gamma = _rng.Floats(c, 0.5f, 1.5f); var beta = _rng.Floats(c); var hdy = _rng.Floats(len);
        var d = _v.Tensor4d(n, c, h, w); var bn = _v.Tensor4d(1, c, 1, 1);
        double eps = 1e-2;
        float one = 1, zero = 0;
        double Loss(float[] xs, float[] gs, float[] bs)
        {
            var x = _v.Put(xs); var y = _v.Poisoned(len);
            float a = 1, b = 0;
            Dnn.Check(Dnn.cudnnBatchNormalizationForwardTraining(_v.Cudnn, CudnnApi.BatchNormSpatial, &a, &b, d, x, d, y, bn, _v.Put(gs), _v.Put(bs),
                0, 0, 0, eps, 0, 0));
            return Reference.Dot(Close.ToDouble(_v.Get(y, len)), Close.ToDouble(hdy));
        }
        var xd = _v.Put(hx); var yd = _v.Poisoned(len); var sm = _v.Poisoned(c); var si = _v.Poisoned(c);
        var gd = _v.Put(gamma);
        Dnn.Check(Dnn.cudnnBatchNormalizationForwardTraining(_v.Cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, xd, d, yd, bn, gd, _v.Put(beta),
            0, 0, 0, eps, sm, si));
        var dx = _v.Poisoned(len); var dg = _v.Put(new float[c]); var db = _v.Put(new float[c]);
        foreach (bool saved in new[] { true, false })
        {
            Dnn.Check(Dnn.cudnnBatchNormalizationBackward(_v.Cudnn, CudnnApi.BatchNormSpatial, &one, &zero, &one, &zero, d, xd, d, _v.Put(hdy), d, dx, bn, gd,
                dg, db, eps, saved ? sm : 0, saved ? si : 0));
            const double step = 1e-2;
            double Fd(float[] a, int i, Func<float[], double> f)
            {
                var plus = (float[])a.Clone(); plus[i] += (float)step;
                var minus = (float[])a.Clone(); minus[i] -= (float)step;
                return (f(plus) - f(minus)) / (plus[i] - minus[i]);
            }
            var ex = Enumerable.Range(0, len).Select(i => Fd(hx, i, a => Loss(a, gamma, beta))).ToArray();
            var eg = Enumerable.Range(0, c).Select(i => Fd(gamma, i, a => Loss(hx, a, beta))).ToArray();
            var eb = Enumerable.Range(0, c).Select(i => Fd(beta, i, a => Loss(hx, gamma, a))).ToArray();
            string how = saved ? "from the saved statistics" : "recomputed from x";
            Close.Check(_v.Get(dx, len), ex, 2e-3, 2e-2, $"dx {how} ({_rng})");
            Close.Check(_v.Get(dg, c), eg, 2e-3, 2e-2, $"dgamma {how} ({_rng})");
            Close.Check(_v.Get(db, c), eb, 2e-3, 2e-2, $"dbeta {how} ({_rng})");
        }
    }

    // ---------------------------------------------------------------- algorithms

    [Test]
    public void StandInFindReportsAlgorithmsSortedWithFailuresLastAndSizesItKeeps()
    {
        // 3x3 stride 1 on an 8x8 map: the stand-in withholds backward data's ALGO_1 here.
        var xd = _v.Tensor4d(2, 4, 8, 8); var wd = _v.Filter4d(4, 4, 3, 3); var yd = _v.Tensor4d(2, 4, 8, 8);
        var conv = _v.Convolution(1, 1);
        var perf = stackalloc CudnnApi.AlgoPerf[16];
        int returned;
        Dnn.Check(Dnn.cudnnFindConvolutionBackwardDataAlgorithm(_v.Cudnn, wd, yd, conv, xd, 16, &returned, perf));
        Assert.That(returned, Is.EqualTo(6), "every backward data algorithm reported");
        var list = Enumerable.Range(0, returned).Select(i => perf[i]).ToList();
        int firstFailure = list.FindIndex(p => p.Status != CudnnStatus.Success);
        Assert.That(list.Skip(firstFailure).All(p => p.Status != CudnnStatus.Success), "failures last");
        Assert.That(list.Take(firstFailure).Select(p => p.Time), Is.Ordered, "the rest by time");
        Assert.That(list.Single(p => p.Algo == 1).Status, Is.EqualTo((CudnnStatus)3002), "ALGO_1 withheld: NOT_SUPPORTED_SHAPE");
        Assert.That(list.Single(p => p.Algo == 0).Determinism, Is.EqualTo(0), "ALGO_0 adds with atomics");
        Assert.That(list.Where(p => p.Status == CudnnStatus.Success).Select(p => p.MathType), Is.All.EqualTo(CudnnApi.FmaMath), "the descriptor's FMA math reported");
        foreach (var p in list.Where(p => p.Status == CudnnStatus.Success))
        {
            nuint bytes;
            Dnn.Check(Dnn.cudnnGetConvolutionBackwardDataWorkspaceSize(_v.Cudnn, wd, yd, conv, xd, p.Algo, &bytes));
            Assert.That(bytes, Is.EqualTo(p.Memory), $"algorithm {p.Algo}: the workspace Find reported is the one asked for");
        }
        nuint unused;
        StandInVendor.IsCategory(Dnn.cudnnGetConvolutionBackwardDataWorkspaceSize(_v.Cudnn, wd, yd, conv, xd, 1, &unused), CudnnStatus.NotSupported, 3002, "ALGO_1 refused here");

        // On a 16x16 map ALGO_1 is there.
        var big = _v.Tensor4d(2, 4, 16, 16);
        Dnn.Check(Dnn.cudnnFindConvolutionBackwardDataAlgorithm(_v.Cudnn, wd, big, conv, big, 16, &returned, perf));
        Assert.That(Enumerable.Range(0, returned).Single(i => perf[i].Algo == 1) is int at && perf[at].Status == CudnnStatus.Success);
    }

    [Test]
    public void StandInReportsTensorOpMathOnlyWhereTheDescriptorAllowsIt()
    {
        var xd = _v.Tensor4d(1, 2, 6, 6); var wd = _v.Filter4d(2, 2, 3, 3); var yd = _v.Tensor4d(1, 2, 6, 6);
        var conv = _v.Convolution(1, 1, math: CudnnApi.TensorOpMath);
        var perf = stackalloc CudnnApi.AlgoPerf[16];
        int returned;
        Dnn.Check(Dnn.cudnnFindConvolutionForwardAlgorithm(_v.Cudnn, xd, wd, conv, yd, 16, &returned, perf));
        var ok = Enumerable.Range(0, returned).Select(i => perf[i]).Where(p => p.Status == CudnnStatus.Success).ToList();
        Assert.That(ok.Select(p => p.MathType), Has.Some.EqualTo(CudnnApi.TensorOpMath).And.Some.EqualTo(CudnnApi.DefaultMath));

        // Running a reported algorithm under another math type than reported is refused (apply the result's mathType first).
        var tensorOp = ok.First(p => p.MathType == CudnnApi.TensorOpMath);
        var x = _v.Put(_rng.Floats(72)); var w = _v.Put(_rng.Floats(36)); var y = _v.Poisoned(72);
        var ws = _v.Put(new float[Math.Max(1, (int)tensorOp.Memory / 4 + 1)]);
        float one = 1, zero = 0;
        Dnn.Check(Dnn.cudnnSetConvolutionMathType(conv, CudnnApi.FmaMath));
        var status = Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, tensorOp.Algo, ws, tensorOp.Memory, &zero, yd, y);
        StandInVendor.IsCategory(status, CudnnStatus.BadParam, 2000, "math type differs from the one Find reported");
        Assert.That(_v.LastCudnnError(), Does.Contain("mathType"));

        // With it applied, TF32 rounding shows: the result differs from the exact one but stays within TF32's 2^-11.
        Dnn.Check(Dnn.cudnnSetConvolutionMathType(conv, CudnnApi.TensorOpMath));
        Dnn.Check(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, tensorOp.Algo, ws, tensorOp.Memory, &zero, yd, y));
        var tf32 = _v.Get(y, 72);
        var exact = ConvLoop(_v.Get(x, 72), 1, 2, 6, 6, _v.Get(w, 36), 2, 3, 3, 1, 1, 1, false);
        Assert.That(tf32.Select((v, i) => (double)v - exact[i]).Any(d => d != 0 && Math.Abs(d) > 1e-6), Is.True, "TF32 inputs change the result");
        Close.Check(tf32, exact, 5e-3, 5e-3, "TF32 stays close");
    }

    // ---------------------------------------------------------------- strictness

    [Test]
    public void StandInRefusesWhatCudnnRefusesWithItsStatusCodes()
    {
        float one = 1, zero = 0;
        var xd = _v.Tensor4d(1, 2, 5, 5); var wd = _v.Filter4d(3, 2, 3, 3); var yd = _v.Tensor4d(1, 3, 5, 5);
        var conv = _v.Convolution(1, 1);
        var x = _v.Put(_rng.Floats(50)); var w = _v.Put(_rng.Floats(54)); var y = _v.Poisoned(75);

        // An output descriptor that does not follow from the convolution.
        var wrong = _v.Tensor4d(1, 3, 4, 5);
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, 0, 0, 0, &zero, wrong, y), CudnnStatus.BadParam, 2008, "shape mismatch");
        Assert.That(_v.LastCudnnError(), Does.Contain("the convolution gives 1x3x5x5"));
        // Wrong enum values.
        StandInVendor.IsCategory(Dnn.cudnnSetConvolution2dDescriptor(conv, 1, 1, 1, 1, 1, 1, 7, CudnnApi.DataFloat), CudnnStatus.BadParam, 2000, "mode 7");
        StandInVendor.IsCategory(Dnn.cudnnSetTensor4dDescriptor(xd, 5, CudnnApi.DataFloat, 1, 2, 5, 5), CudnnStatus.BadParam, 2000, "format 5");
        StandInVendor.IsCategory(Dnn.cudnnSetConvolutionMathType(conv, 9), CudnnStatus.BadParam, 2000, "math type 9");
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, 8, 0, 0, &zero, yd, y), CudnnStatus.BadParam, 2000, "forward algorithm 8");
        // A y that ends inside its allocation's last bytes: the descriptor's extent is checked, not just the start.
        var shortY = _v.Poisoned(74);
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, 0, 0, 0, &zero, yd, shortY), CudnnStatus.BadParam, 2005, "y too short");
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, 0, wd, w, conv, 0, 0, 0, &zero, yd, y), CudnnStatus.BadParam, 2002, "null x");
        // Output overlapping an input.
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, _v.Tensor4d(1, 3, 5, 5), y, _v.Filter4d(3, 3, 3, 3), _v.Put(_rng.Floats(81)), conv, 0, 0, 0,
            &zero, yd, y), CudnnStatus.BadParam, 2000, "in place");
        // A workspace smaller than the algorithm asked for.
        nuint bytes;
        Dnn.Check(Dnn.cudnnGetConvolutionForwardWorkspaceSize(_v.Cudnn, xd, wd, conv, yd, 2, &bytes));
        Assert.That((long)bytes, Is.GreaterThan(0), "GEMM needs its im2col buffer");
        var ws = _v.Put(new float[(int)bytes / 4]);
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, 2, ws, bytes - 4, &zero, yd, y), CudnnStatus.BadParam, 2006, "workspace short");
        Dnn.Check(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, 2, ws, bytes, &zero, yd, y));
        // DIRECT is never supported (as in cuDNN).
        StandInVendor.IsCategory(Dnn.cudnnConvolutionForward(_v.Cudnn, &one, xd, x, wd, w, conv, 3, 0, 0, &zero, yd, y), CudnnStatus.NotSupported, 3002, "DIRECT");

        // Batch norm: a running-mean pointer without its variance; one value per channel.
        var bn = _v.Tensor4d(1, 2, 1, 1);
        var g = _v.Put([1, 1]); var b = _v.Put([0, 0]);
        StandInVendor.IsCategory(Dnn.cudnnBatchNormalizationForwardTraining(_v.Cudnn, CudnnApi.BatchNormSpatial, &one, &zero, xd, x, xd, _v.Poisoned(50), bn, g, b,
            0.5, _v.Put([0, 0]), 0, 1e-5, 0, 0), CudnnStatus.BadParam, 2000, "running mean without variance");
        var single = _v.Tensor4d(1, 2, 1, 1);
        StandInVendor.IsCategory(Dnn.cudnnBatchNormalizationForwardTraining(_v.Cudnn, CudnnApi.BatchNormSpatial, &one, &zero, single, x, single, _v.Poisoned(2), bn, g, b,
            0.5, _v.Put([0, 0]), _v.Put([1, 1]), 1e-5, 0, 0), CudnnStatus.BadParam, 2000, "M = 1");
        Assert.That(_v.LastCudnnError(), Does.Contain("M/(M-1)"));
    }

    [Test]
    public void StandInInsistsOnTheStreamAndOnAHealthyContext()
    {
        IntPtr fresh;
        Dnn.Check(Dnn.cudnnCreate(&fresh));
        try
        {
            float one = 1, zero = 0;
            var d = _v.Tensor4d(1, 1, 2, 2);
            var x = _v.Put([1, 2, 3, 4]);
            StandInVendor.IsCategory(Dnn.cudnnAddTensor(fresh, &one, d, x, &zero, d, _v.Poisoned(4)), CudnnStatus.BadParam, 2007, "work before cudnnSetStream");
            Assert.That(_v.LastCudnnError(), Does.Contain("cudnnSetStream"));
            StandInVendor.IsCategory(Dnn.cudnnSetStream(fresh, (IntPtr)0x1234), CudnnStatus.BadParam, 2007, "another stream");
            Dnn.Check(Dnn.cudnnSetStream(fresh, IntPtr.Zero));
            Dnn.Check(Dnn.cudnnAddTensor(fresh, &one, d, x, &zero, d, _v.Poisoned(4)));
        }
        finally
        {
            Dnn.cudnnDestroy(fresh);
        }
        StandInVendor.IsCategory(Dnn.cudnnDestroy(fresh), CudnnStatus.BadParam, 2000, "a destroyed handle");
    }
}
