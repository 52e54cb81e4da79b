using CudaSwa.Cpu;
using CudaSwa.Cpu.Simd;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cpu;

/// <summary>
/// The one elementwise driver at every vector width this machine runs (scalar, Vector256,
/// Vector512 where accelerated), forced with <see cref="Simd.Limit"/>: every length from 0 to 256
/// (each width's main loop, the scalar tail and the empty case) and one large length split across
/// the workers. Elementwise ops must give the same bits at every width (the bodies are the same
/// operations) and match float64 closed forms; BatchNorm's reductions differ between widths only
/// by summation order, within a float32 tolerance of a float64 reference.
/// </summary>
[Category("Cpu")]
[NonParallelizable] // the width limit is process-wide
public class SimdWidthTests
{
    private CpuBackend _cpu = null!;
    private Fresh _rng = null!;

    [SetUp]
    public void Create()
    {
        _cpu = new CpuBackend();
        _rng = new Fresh();
    }

    [TearDown]
    public void Release() => _cpu.Dispose();

    private static IEnumerable<int> Lengths => Enumerable.Range(0, 257).Append(3_000_017);

    private Tensor Put(float[] v)
    {
        var t = _cpu.AllocateTensor(new TensorShape(Math.Max(v.Length, 1)));
        _cpu.Upload<float>(v, t.Slice(0, v.Length));
        return t.Slice(0, v.Length);
    }

    private Tensor Poisoned(int n) => Put(Close.Poison(n));

    private float[] Get(Tensor t) => _cpu.ToArray(t);

    /// <summary>Every elementwise op once on fixed inputs: name -> output values.</summary>
    private List<(string Op, float[] Values)> RunAll(float[] a, float[] b, float[] g)
    {
        int n = a.Length;
        var results = new List<(string, float[])>();
        var y = Poisoned(n);
        _cpu.ReluForward(Put(a), y);
        results.Add(("relu", Get(y)));
        foreach (bool acc in new[] { false, true })
        {
            var dx = Put(b);
            _cpu.ReluBackward(Put(a), Put(g), dx, acc);
            results.Add(($"relu backward accumulate={acc}", Get(dx)));
            var dst = Put(b);
            _cpu.AccumulateGradient(Put(g), dst, acc);
            results.Add(($"accumulate accumulate={acc}", Get(dst)));
        }
        var sum = Poisoned(n);
        _cpu.Add(Put(a), Put(b), sum);
        results.Add(("add", Get(sum)));
        foreach (float alpha in new[] { 0.3f, 1f }) // not a power of two: a rounded product, so FMA vs multiply-add shows
        {
            var avg = Put(a);
            _cpu.AverageUpdate(avg, Put(b), alpha);
            results.Add(($"average alpha={alpha}", Get(avg)));
        }
        foreach (bool nesterov in new[] { false, true })
        {
            var w = Put(a);
            var v = Put(b);
            _cpu.SgdStep(w, Put(g), v, new SgdHyper(0.1f, 0.9f, 1e-3f, nesterov));
            results.Add(($"sgd weights nesterov={nesterov}", Get(w)));
            results.Add(($"sgd velocity nesterov={nesterov}", Get(v)));
        }
        {
            var mean = Put(b);
            var square = Put(SquareOf(b));
            var deviation = Poisoned(n);
            _cpu.SwagCollect(Put(a), mean, square, deviation, 0.3f);
            results.Add(("swag mean", Get(mean)));
            results.Add(("swag square mean", Get(square)));
            results.Add(("swag deviation", Get(deviation)));
            var point = Poisoned(n);
            _cpu.PointOnLine(Put(a), Put(g), 0.3f, point);
            results.Add(("point on line", Get(point)));
            if (n > 0)
            {
                var sample = Poisoned(n);
                _cpu.SwagSample(Put(a), Put(SquareOf(a, b)), Put([.. g, .. b]), Put([0.7f, -1.3f]), new SwagSampleSpec(2, 0.6f, 0.4f, 1e-6f, 77, 5), sample);
                results.Add(("swag sample", Get(sample)));
            }
        }
        if (n > 0)
        {
            // BN inference applies x * scale + shift per channel: one channel of n values.
            var bn = _cpu.AllocateTensor(TensorShape.Nchw(1, 1, 1, n));
            _cpu.Fill(bn, float.NaN);
            _cpu.BatchNormForwardInference(Put(a).Reshape(TensorShape.Nchw(1, 1, 1, n)), bn, Put([1.5f]), Put([-0.25f]), Put([0.125f]), Put([0.8f]), 1e-5);
            results.Add(("batch norm inference", Get(bn)));
        }
        return results;
    }

    private static float[] SquareOf(float[] b) => [.. b.Select(v => v * v + 0.5f)];
    private static float[] SquareOf(float[] a, float[] b) => [.. a.Select((v, i) => v * v + Math.Abs(b[i]))];

    /// <summary>The float64 closed form of each op, for the same inputs.</summary>
    private static double[] Expected(string op, float[] a, float[] b, float[] g)
    {
        double[] Each(Func<int, double> f) => Enumerable.Range(0, a.Length).Select(f).ToArray();
        float[] sqb = SquareOf(b), sqab = SquareOf(a, b);
        return op switch
        {
            "relu" => Each(i => Math.Max(a[i], 0)),
            "relu backward accumulate=False" => Each(i => a[i] > 0 ? g[i] : 0),
            "relu backward accumulate=True" => Each(i => b[i] + (a[i] > 0 ? g[i] : 0.0)),
            "accumulate accumulate=False" => Each(i => g[i]),
            "accumulate accumulate=True" => Each(i => (double)b[i] + g[i]),
            "add" => Each(i => (double)a[i] + b[i]),
            "average alpha=0.3" => Each(i => a[i] + 0.3 * ((double)b[i] - a[i])),
            "average alpha=1" => Each(i => b[i]),
            "sgd weights nesterov=False" => Each(i => a[i] - 0.1 * (0.9 * b[i] + g[i] + 1e-3 * a[i])),
            "sgd velocity nesterov=False" => Each(i => 0.9 * b[i] + g[i] + 1e-3 * a[i]),
            "sgd weights nesterov=True" => Each(i =>
            {
                double gi = g[i] + 1e-3 * a[i];
                return a[i] - 0.1 * (gi + 0.9 * (0.9 * b[i] + gi));
            }),
            "sgd velocity nesterov=True" => Each(i => 0.9 * b[i] + g[i] + 1e-3 * a[i]),
            "batch norm inference" => Each(i => (a[i] - 0.125) / Math.Sqrt(0.8 + 1e-5) * 1.5 - 0.25),
            "swag mean" => Each(i => b[i] + 0.3 * ((double)a[i] - b[i])),
            "swag square mean" => Each(i => sqb[i] + 0.3 * ((double)a[i] * a[i] - sqb[i])),
            "swag deviation" => Each(i => a[i] - (b[i] + 0.3 * ((double)a[i] - b[i]))),
            "point on line" => Each(i => a[i] + 0.3 * g[i]),
            "swag sample" => Each(i =>
            {
                float v = sqab[i] - a[i] * a[i]; // the op's definition: the float difference, then the floor
                var pair = Util.Philox.NormalPair(Util.Philox.Generate((uint)(i / 2), 0, 5, 0x53574147u, 77, 0));
                double z = i % 2 == 0 ? pair.Z0 : pair.Z1;
                return a[i] + 0.6 * Math.Sqrt(Math.Max(v, 1e-6)) * z + 0.4 * (0.7 * g[i] - 1.3 * b[i]);
            }),
            _ => throw new ArgumentException(op),
        };
    }

    [Test]
    public void EveryElementwiseOpGivesTheSameBitsAtEveryWidthAndMatchesItsClosedForm()
    {
        var widths = Simd.Supported.ToArray();
        TestContext.Out.WriteLine($"widths run here: {string.Join(", ", widths)} (seed {_rng.Seed})");
        foreach (int n in Lengths)
        {
            var a = _rng.FloatsAwayFromZero(n, 1e-3f, 2f);
            var b = _rng.Floats(n);
            var g = _rng.Floats(n);
            List<(string Op, float[] Values)>? scalar = null;
            foreach (var width in widths)
            {
                List<(string Op, float[] Values)> results;
                using (Simd.Limit(width)) results = RunAll(a, b, g);
                if (scalar is null)
                {
                    scalar = results;
                    foreach (var (op, values) in results)
                        Close.Check(values, Expected(op, a, b, g), 1e-6, 1e-6, $"{op} n={n} at {width}");
                    continue;
                }
                for (int k = 0; k < results.Count; k++)
                {
                    var (op, values) = results[k];
                    var reference = scalar[k].Values;
                    int diff = Enumerable.Range(0, values.Length).FirstOrDefault(i => BitConverter.SingleToInt32Bits(values[i]) != BitConverter.SingleToInt32Bits(reference[i]), -1);
                    Assert.That(diff, Is.EqualTo(-1), $"{op} n={n}: {width} gives {(diff < 0 ? 0 : values[diff]):R} at {diff}, scalar {(diff < 0 ? 0 : scalar[k].Values[diff]):R} (seed {_rng.Seed})");
                }
            }
        }
    }

    [Test]
    public void ReluPropagatesNaNAndMapsNegativeZeroToZeroAtEveryWidth()
    {
        float[] x = [.. Enumerable.Range(0, 37).Select(i => (i % 4) switch { 0 => float.NaN, 1 => -0f, 2 => -1.5f, _ => 2.25f })];
        foreach (var width in Simd.Supported)
        {
            using var _ = Simd.Limit(width);
            var y = Poisoned(x.Length);
            _cpu.ReluForward(Put(x), y);
            var r = Get(y);
            for (int i = 0; i < x.Length; i++)
            {
                float expected = float.IsNaN(x[i]) ? float.NaN : x[i] > 0 ? x[i] : 0f;
                Assert.That(BitConverter.SingleToInt32Bits(r[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected)),
                    $"relu({x[i]}) at {width} gave {r[i]} (IEEE maximum: NaN stays NaN, -0 becomes +0)");
            }
        }
    }

    [Test]
    public void BatchNormAtEveryWidthMatchesFloat64References()
    {
        foreach (var width in Simd.Supported)
        {
            using var _ = Simd.Limit(width);
            foreach (int hw in Enumerable.Range(1, 40).Append(1024))
            {
                int n = 3, c = 2;
                var shape = TensorShape.Nchw(n, c, hw, 1);
                var x = _rng.Floats(n * c * hw, -1, 2);
                var dy = _rng.Floats(n * c * hw);
                float[] gamma = [1.5f, 0.5f], beta = [0.1f, -0.2f];
                var xt = Put(x).Reshape(shape);
                var y = Poisoned(n * c * hw).Reshape(shape);
                var sm = Poisoned(c);
                var si = Poisoned(c);
                _cpu.BatchNormForwardTraining(xt, y, Put(gamma), Put(beta), Put([0f, 0f]), Put([1f, 1f]), 1.0, 1e-5, sm, si);
                var (yRef, _, _) = Reference.BatchNormTrain(Close.ToDouble(x), n, c, hw, Close.ToDouble(gamma), Close.ToDouble(beta), 1e-5);
                Close.Check(Get(y), yRef, 1e-5, 1e-5, $"bn forward hw={hw} at {width}");

                var dx = Put(_rng.Floats(n * c * hw)).Reshape(shape);
                var before = Get(dx);
                var dg = Put([0f, 0f]);
                var db = Put([0f, 0f]);
                _cpu.BatchNormBackward(xt, Put(dy).Reshape(shape), Put(gamma), sm, si, dx, dg, db, 1e-5, accumulate: true);
                var (dxRef, dgRef, dbRef) = BatchNormBackwardReference(x, dy, gamma, n, c, hw, 1e-5);
                Close.Check(Get(dx), dxRef.Select((v, i) => v + before[i]).ToArray(), 1e-4, 1e-4, $"bn backward dx hw={hw} at {width}");
                Close.Check(Get(dg), dgRef, 1e-4, 1e-4, $"bn backward dgamma hw={hw} at {width}");
                Close.Check(Get(db), dbRef, 1e-4, 1e-4, $"bn backward dbeta hw={hw} at {width}");
            }
        }
    }

    /// <summary>Training-mode BN backward in float64 from its definition (batch statistics, biased variance).</summary>
    private static (double[] Dx, double[] DGamma, double[] DBeta) BatchNormBackwardReference(float[] x, float[] dy, float[] gamma, int n, int c, int hw, double eps)
    {
        var dx = new double[x.Length];
        var dg = new double[c];
        var db = new double[c];
        double m = (double)n * hw;
        for (int ch = 0; ch < c; ch++)
        {
            IEnumerable<long> Idx() => Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(0, hw).Select(k => ((long)i * c + ch) * hw + k));
            double mean = Idx().Sum(i => (double)x[i]) / m;
            double var = Idx().Sum(i => (x[i] - mean) * (x[i] - mean)) / m;
            double inv = 1 / Math.Sqrt(var + eps);
            db[ch] = Idx().Sum(i => (double)dy[i]);
            dg[ch] = Idx().Sum(i => dy[i] * (x[i] - mean) * inv);
            foreach (long i in Idx())
                dx[i] = gamma[ch] * inv * (dy[i] - db[ch] / m - (x[i] - mean) * inv * dg[ch] / m);
        }
        return (dx, dg, db);
    }
}
