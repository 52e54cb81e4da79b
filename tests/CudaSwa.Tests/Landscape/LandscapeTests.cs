using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Landscape;
using CudaSwa.Layers;
using CudaSwa.Tensors;
using CudaSwa.Training;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Landscape;

/// <summary>
/// The loss landscape on the CPU: directions (unit or per-filter norm, reproducible by seed), the
/// segment's ends against the run's own evaluations, determinism, and a run stopped midway and
/// continued from its points.
/// </summary>
[Category("Cpu")]
public class LandscapeTests
{
    private static NetworkBuilder SmallNet(int numClasses) => TinyRuns.Net("landscape-net", numClasses);

    private static (ImageDataset Train, ImageDataset Test) Data() => TinyRuns.Data(200, 60, seed: 4);

    [Test]
    public void LandscapeDirectionsHaveUnitNormZeroPaddingAndAreReproducibleBySeed()
    {
        var layout = SmallNet(10).Parameters;
        var d = LandscapeDirections.Unit(layout, seed: 9, ray: 2);
        Assert.That(Math.Sqrt(d.Sum(v => (double)v * v)), Is.EqualTo(1.0).Within(1e-5));
        var inTensors = new bool[d.Length];
        foreach (var e in layout.Entries) for (long i = e.Offset; i < e.Offset + e.Length; i++) inTensors[i] = true;
        for (int i = 0; i < d.Length; i++) if (!inTensors[i]) Assert.That(d[i], Is.Zero, $"padding at {i}");
        Assert.That(LandscapeDirections.Unit(layout, 9, 2), Is.EqualTo(d));
        Assert.That(LandscapeDirections.Unit(layout, 9, 3), Is.Not.EqualTo(d));
        Assert.That(LandscapeDirections.Unit(layout, 10, 2), Is.Not.EqualTo(d));
    }

    [Test]
    public void LandscapeFilterNormalizedDirectionsCarryEachFiltersNormAndSkipRankOneTensors()
    {
        var layout = SmallNet(10).Parameters;
        var rnd = new Random(5);
        var w = Enumerable.Range(0, (int)layout.Length).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var d = LandscapeDirections.FilterNormalized(layout, w, seed: 3, ray: 0);
        foreach (var e in layout.Entries)
        {
            var shape = e.Shape.ToArray();
            if (shape.Length < 2)
            {
                Assert.That(d.AsSpan((int)e.Offset, (int)e.Length).ToArray(), Is.All.Zero, e.Name);
                continue;
            }
            long per = e.Length / shape[0];
            for (int f = 0; f < shape[0]; f++)
            {
                double dn = 0, wn = 0;
                for (long i = e.Offset + f * per; i < e.Offset + (f + 1) * per; i++) { dn += (double)d[i] * d[i]; wn += (double)w[i] * w[i]; }
                Assert.That(Math.Sqrt(dn), Is.EqualTo(Math.Sqrt(wn)).Within(1e-5 * Math.Sqrt(wn)), $"{e.Name} filter {f}");
            }
        }
        Assert.That(LandscapeDirections.FilterNormalized(layout, w, 3, 0), Is.EqualTo(d));
    }

    [Test]
    public void LandscapeSegmentEndsReproduceTheRunsSwaEvaluationAndTheSgdModelWithItsBnRecomputed()
    {
        var (train, test) = Data();
        var run = new TrainingOptions { Model = "landscape-net", Epochs = 3, SwaStart = 1, BatchSize = 50, Lr = 0.05, SwaLr = 0.02, Seed = (ulong)Environment.TickCount, Ensemble = false };
        using var backend = new CpuBackend();
        using var trainer = Trainer.ForNetwork(run, SmallNet, backend, train, test, null);
        Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
        var recorded = trainer.State.History[^1];
        var swa = trainer.Averager!.ParametersToHost();
        var sgd = trainer.Network.OwnParameters.ToHost();
        var options = new LandscapeOptions { Rays = 2, Steps = 2, SegmentPoints = 5, TrainSubset = 80, Seed = 11 }; // t = -0.5, 0, 0.5, 1, 1.5
        using var landscape = new LossLandscape(trainer.Network, train, test, run, options, swa, sgd);
        var points = landscape.Run([]);
        Assert.That(points, Has.Count.EqualTo(landscape.PointCount));
        var summary = LossLandscape.Summarize(points, options);
        Assert.That(summary.SwaOnSegment!.Value.TestLoss, Is.EqualTo(recorded.Average!.Loss), "t = 0 is the run's SWA evaluation, bit for bit");
        Assert.That(summary.SwaOnSegment!.Value.TestError, Is.EqualTo(1 - recorded.Average!.Accuracy));
        // The SGD model with its BN statistics recomputed by the run's recipe, computed here independently.
        using var trainData = new DeviceDataset(train, backend);
        using var testData = new DeviceDataset(test, backend);
        using var bn = new BatchLoader(trainData, run.BatchSize, shuffle: true, new AugmentSpec(), run.Seed ^ BatchNormRecompute.LoaderSeedSalt);
        using var testLoader = new BatchLoader(testData, run.BatchSize, shuffle: false, new AugmentSpec().ForEvaluation(), run.Seed);
        using var sgdParams = trainer.Network.CreateParameterArena();
        using var sgdBuffers = trainer.Network.CreateBufferArena();
        sgdParams.FromHost(sgd);
        using var evaluator = new Evaluator(trainer.Network);
        using (trainer.Network.Bind(sgdParams, sgdBuffers))
        {
            BatchNormRecompute.Run(trainer.Network, bn, run.Epochs - 1, run.BnRecompute!.Value);
            var (loss, acc) = evaluator.Evaluate(testLoader);
            Assert.That(summary.SgdOnSegment!.Value.TestLoss, Is.EqualTo(loss), "t = 1 is the SGD model with its BN recomputed");
            Assert.That(summary.SgdOnSegment!.Value.TestError, Is.EqualTo(1 - acc));
        }
        // Rays: every ray starts at its solution's own point; farther points differ.
        var fromSwa = points.Where(p => p.Kind == LandscapePoint.RaySwa).ToList();
        Assert.That(fromSwa.Where(p => p.Position == 0).Select(p => p.TestLoss).Distinct().Single(), Is.EqualTo(recorded.Average!.Loss));
        Assert.That(fromSwa.Where(p => p.Position > 0).Select(p => p.TrainLoss), Has.None.EqualTo(fromSwa[0].TrainLoss));
    }

    [Test]
    public void LandscapeIsDeterministicAndAStoppedRunContinuesToTheSamePoints()
    {
        var (train, test) = Data();
        var run = new TrainingOptions { Model = "landscape-net", Epochs = 2, SwaStart = 1, BatchSize = 50, Lr = 0.05, SwaLr = 0.02, Seed = 3, Ensemble = false };
        using var backend = new CpuBackend();
        using var trainer = Trainer.ForNetwork(run, SmallNet, backend, train, test, null);
        trainer.Run(CancellationToken.None);
        var swa = trainer.Averager!.ParametersToHost();
        var sgd = trainer.Network.OwnParameters.ToHost();
        var options = new LandscapeOptions { Rays = 2, Steps = 2, SegmentPoints = 3, TrainSubset = 60, FilterNormalized = true, Seed = 5 };
        List<LandscapePoint> whole, first, rest;
        using (var l = new LossLandscape(trainer.Network, train, test, run, options, swa, sgd)) whole = l.Run([]);
        using (var cancel = new CancellationTokenSource())
        using (var l = new LossLandscape(trainer.Network, train, test, run, options, swa, sgd))
        {
            var saved = new List<LandscapePoint>();
            int measured = 0;
            l.Run([], rows => { saved.AddRange(rows); if (++measured == 4) cancel.Cancel(); }, null, cancel.Token);
            first = saved;
        }
        Assert.That(first.Count, Is.LessThan(whole.Count));
        using (var l = new LossLandscape(trainer.Network, train, test, run, options, swa, sgd)) rest = l.Run(first);
        Assert.That(rest, Is.EqualTo(whole), "continued from the saved points: the same numbers, in the same order");
    }
}
