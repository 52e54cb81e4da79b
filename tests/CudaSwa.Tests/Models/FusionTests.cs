using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Models;

/// <summary>
/// Networks with fused layers (batch norm + ReLU, residual add + ReLU; in evaluation the batch
/// norm folded into the convolution before it) against the same networks built with every
/// layer apart: training steps and BN recomputes give the same bits; evaluation differs only by
/// the rounding of the folded weights; the folded weights follow every change of the weights or
/// statistics, whoever made it.
/// </summary>
[Category("Cpu")]
public class FusionTests
{
    private CpuBackend _b = null!;
    private Fresh _rng = null!;

    [SetUp]
    public void Create()
    {
        _b = new CpuBackend();
        _rng = new Fresh();
    }

    [TearDown]
    public void Release() => _b.Dispose();

    private (Network Fused, Network Apart) Pair(string model, int batch)
    {
        ulong seed = (ulong)_rng.Seed;
        var fused = ModelZoo.Describe(model, 10).Build(_b, batch, seed, fuse: true);
        var apart = ModelZoo.Describe(model, 10).Build(_b, batch, seed, fuse: false);
        Assert.That(fused.Fused, Is.True);
        Assert.That(apart.Fused, Is.False);
        return (fused, apart);
    }

    private static void Same(float[] actual, float[] expected, string what) => Emulation.EmulatedKernelTests.Same(actual, expected, what);

    [TestCase("resnet20", 16)]
    [TestCase("preresnet110", 4)]
    [TestCase("vgg16bn", 4)]
    public void TrainingStepsOfTheFusedNetworkAreBitIdentical(string model, int batch)
    {
        var (fused, apart) = Pair(model, batch);
        using (fused) using (apart)
        {
            Assert.That(fused.Layers.OfType<Relu>().Count(r => r.Fused), Is.GreaterThan(0), "the model has fusable ReLUs");
            using var sgdF = new Sgd(fused, 0.9f, 5e-4f);
            using var sgdA = new Sgd(apart, 0.9f, 5e-4f);
            using var stepF = new TrainingStep(fused, sgdF);
            using var stepA = new TrainingStep(apart, sgdA);
            for (int s = 0; s < 3; s++)
            {
                var x = _rng.Floats(batch * 3 * 32 * 32, -2, 2);
                var labels = _rng.Ints(batch, 0, 10);
                foreach (var (net, step) in new[] { (fused, stepF), (apart, stepA) })
                {
                    _b.Upload<float>(x, net.Input(batch));
                    _b.Upload<int>(labels, step.Labels.Slice(0, batch));
                    step.Run(batch, 0.05f, (ulong)s);
                }
                Assert.That(stepF.ReadStats(), Is.EqualTo(stepA.ReadStats()), $"{model} step {s}: loss sum and correct count ({_rng})");
            }
            Same(fused.Parameters.ToHost(), apart.Parameters.ToHost(), $"{model} weights after 3 steps ({_rng})");
            Same(sgdF.Velocity.ToHost(), sgdA.Velocity.ToHost(), $"{model} momentum");
            Same(fused.Buffers.ToHost(), apart.Buffers.ToHost(), $"{model} BN running statistics");
        }
    }

    [Test]
    public void BatchNormRecomputeOfTheFusedNetworkIsBitIdentical()
    {
        var (fused, apart) = Pair("resnet20", 25);
        using (fused) using (apart)
        {
            var (train, _) = SyntheticCifar.Generate(trainCount: 100, testCount: 10, seed: 5);
            using var data = new DeviceDataset(train, _b);
            using var loader = new BatchLoader(data, 25, shuffle: true, new AugmentSpec(), seed: 3);
            apart.Parameters.FromHost(fused.Parameters.ToHost().Select(v => v * 1.1f).ToArray());
            fused.Parameters.FromHost(apart.Parameters.ToHost());
            BatchNormRecompute.Run(fused, loader, epochKey: 1);
            BatchNormRecompute.Run(apart, loader, epochKey: 1);
            Same(fused.Buffers.ToHost(), apart.Buffers.ToHost(), $"recomputed statistics ({_rng})");
        }
    }

    /// <summary>Logits of one evaluation pass over <paramref name="x"/>.</summary>
    private float[] Evaluate(Network net, float[] x, int batch)
    {
        _b.Upload<float>(x, net.Input(batch));
        net.Forward(batch, RunMode.Eval);
        return _b.ToArray(net.Logits(batch));
    }

    /// <summary>Non-trivial running statistics and BN parameters (fresh networks have mean 0, variance 1, scale 1).</summary>
    private void Perturb(Network a, Network b)
    {
        var p = a.Parameters.ToHost().Select(v => v * (1f + 0.2f * (float)_rng.Random.NextDouble())).ToArray();
        var s = a.Buffers.ToHost();
        foreach (var e in a.BufferLayout.Entries)
            for (long i = e.Offset; i < e.Offset + e.Length; i++)
                s[i] = e.Role == ArenaRole.BatchNormRunningVar ? 0.5f + (float)_rng.Random.NextDouble() : 0.3f * ((float)_rng.Random.NextDouble() - 0.5f);
        foreach (var n in new[] { a, b })
        {
            n.Parameters.FromHost(p);
            n.Buffers.FromHost(s);
        }
    }

    private static double WorstRelative(float[] a, float[] b)
    {
        double scale = b.Max(v => Math.Abs((double)v));
        return a.Zip(b, (u, v) => Math.Abs((double)u - v)).Max() / scale;
    }

    [TestCase("resnet20")]
    [TestCase("vgg16bn")]
    [TestCase("preresnet110")]
    public void EvaluationWithFoldedBatchNormsMatchesWithinRounding(string model)
    {
        int batch = 8;
        var (fused, apart) = Pair(model, batch);
        using (fused) using (apart)
        {
            Perturb(fused, apart);
            var x = _rng.Floats(batch * 3 * 32 * 32, -2, 2);
            var yf = Evaluate(fused, x, batch);
            var ya = Evaluate(apart, x, batch);
            Assert.That(ya.All(float.IsFinite) && ya.Any(v => v != 0) && ya.Distinct().Count() > ya.Length / 2, Is.True,
                "the unfused evaluation gives finite, varied logits (a comparison of two empty or constant outputs would prove nothing)");
            Assert.That(WorstRelative(yf, ya), Is.LessThan(1e-4), $"{model}: folded evaluation vs apart, relative to the largest logit ({_rng})");
            if (model != "preresnet110")
                Assert.That(fused.Layers.OfType<Conv2d>().Count(c => c.FoldedBatchNorm is not null), Is.GreaterThan(0), "batch norms were folded");
        }
    }

    [Test]
    public void FoldedWeightsFollowEveryChangeOfWeightsOrStatistics()
    {
        int batch = 8;
        var (fused, apart) = Pair("resnet8", batch);
        using (fused) using (apart)
        {
            Perturb(fused, apart);
            var x = _rng.Floats(batch * 3 * 32 * 32, -2, 2);
            void Agree(string after)
            {
                double worst = WorstRelative(Evaluate(fused, x, batch), Evaluate(apart, x, batch));
                Assert.That(worst, Is.LessThan(1e-4), $"after {after}: folded weights out of date ({_rng})");
            }
            Agree("building");
            int folds = fused.FoldCount;
            Evaluate(fused, x, batch);
            Assert.That(fused.FoldCount, Is.EqualTo(folds), "nothing changed: no refold");

            // A training step writes the weights (SGD) and the statistics (training-mode BN).
            using var sgdF = new Sgd(fused, 0.9f, 5e-4f);
            using var sgdA = new Sgd(apart, 0.9f, 5e-4f);
            using var stepF = new TrainingStep(fused, sgdF);
            using var stepA = new TrainingStep(apart, sgdA);
            var labels = _rng.Ints(batch, 0, 10);
            foreach (var (net, step) in new[] { (fused, stepF), (apart, stepA) })
            {
                _b.Upload<float>(x, net.Input(batch));
                _b.Upload<int>(labels, step.Labels.Slice(0, batch));
                step.Run(batch, 0.5f, 0);
            }
            Agree("a training step");

            // An op of the caller's writing one weight tensor in place.
            foreach (var net in new[] { fused, apart })
                _b.Fill(net.Parameters[net.ParameterLayout.Entries.First(e => e.Role == ArenaRole.BatchNormScale).Name], 0.37f);
            Agree("a fill of one BN scale");

            // Another set of weights bound (the SWA model), then the own ones again.
            using var swaF = new WeightAverager(fused);
            using var swaA = new WeightAverager(apart);
            swaF.Update();
            swaA.Update();
            foreach (var net in new[] { fused, apart }) _b.Fill(net.Parameters.All, 0.01f);
            using (swaF.Bind())
            using (swaA.Bind())
            {
                foreach (var net in new[] { fused, apart }) net.Buffers.FromHost(fused.Buffers.ToHost().Select(v => v + 0.5f).ToArray());
                Agree("binding the average and uploading its statistics");
            }
            Agree("unbinding");
            Assert.That(fused.FoldCount, Is.GreaterThan(folds + 3), "each change refolded");
        }
    }
}
