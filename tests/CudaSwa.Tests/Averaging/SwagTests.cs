using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>
/// SWAG (SwagMoments, the averager's SWAG kind and the trainer's Bayesian model average) on the
/// CPU: moments against closed forms, the ring's order after wrap-around, the covariance of many
/// samples against diag + DDᵀ/(K−1), diagonal-only mode, BMA against the mean of the sampled
/// models' probabilities, and a resume that ends with the bits of an uninterrupted run.
/// </summary>
[Category("Cpu")]
public class SwagTests
{
    private Fresh _rng = null!;
    private CpuBackend _cpu = null!;

    [SetUp]
    public void SetUp()
    {
        _rng = new Fresh();
        _cpu = new CpuBackend();
    }

    [TearDown]
    public void TearDown() => _cpu.Dispose();

    private Tensor Put(float[] v)
    {
        var t = _cpu.AllocateTensor(new TensorShape(v.Length));
        _cpu.Upload<float>(v, t);
        return t;
    }

    [Test]
    public void SwagMomentsEqualTheClosedFormMeanAndMeanOfSquaresOfTheSnapshots([Values(0, 3, 20)] int rank)
    {
        int n = 517, k = 7;
        var snapshots = Enumerable.Range(0, k).Select(_ => _rng.Floats(n, -2, 2)).ToArray();
        using var swag = new SwagMoments(_cpu, n, rank);
        var mean = Put(Close.Poison(n));
        foreach (var w in snapshots) swag.Collect(Put(w), mean);
        Assert.That(swag.Count, Is.EqualTo(k));
        Assert.That(swag.Columns, Is.EqualTo(Math.Min(k, rank)));
        Close.Check(_cpu.ToArray(mean), Enumerable.Range(0, n).Select(j => snapshots.Average(w => (double)w[j])).ToArray(), 1e-5, 1e-5, $"mean ({_rng})");
        Close.Check(swag.SquareMeanToHost(), Enumerable.Range(0, n).Select(j => snapshots.Average(w => (double)w[j] * w[j])).ToArray(), 1e-5, 1e-5, $"mean of squares ({_rng})");
    }

    [Test]
    public void SwagDeviationRingKeepsTheLastKColumnsInOrderAfterWrapAround()
    {
        int n = 101, rank = 3, k = 8; // 8 collections into 3 slots: wrapped twice, next slot 2
        var snapshots = Enumerable.Range(0, k).Select(_ => _rng.Floats(n, -1, 1)).ToArray();
        using var swag = new SwagMoments(_cpu, n, rank);
        var mean = Put(new float[n]);
        foreach (var w in snapshots) swag.Collect(Put(w), mean);
        Assert.That(swag.NextSlot, Is.EqualTo(k % rank));
        var columns = swag.DeviationsInOrder();
        Assert.That(columns, Has.Length.EqualTo(rank));
        for (int c = 0; c < rank; c++)
        {
            int s = k - rank + c; // collection s (0-based): its deviation from the mean of the first s+1 snapshots
            var expected = Enumerable.Range(0, n).Select(j => snapshots[s][j] - snapshots.Take(s + 1).Average(w => (double)w[j])).ToArray();
            Close.Check(columns[c], expected, 1e-5, 1e-5, $"column {c} = collection {s + 1} ({_rng})");
        }
    }

    [Test]
    public void SwagSampleCovarianceMatchesDiagonalPlusLowRankWithinItsStatisticalError([Values(0, 4)] int rank)
    {
        // Six weights, six collections: the sample covariance must be scale·(diag + DDᵀ/(K−1)).
        int n = 6, k = 6, samples = 20_000;
        double scale = 0.5;
        var rnd = new Random(11);
        var snapshots = Enumerable.Range(0, k).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray()).ToArray();
        using var swag = new SwagMoments(_cpu, n, rank);
        var mean = Put(new float[n]);
        foreach (var w in snapshots) swag.Collect(Put(w), mean);
        var m = _cpu.ToArray(mean);
        var sq = swag.SquareMeanToHost();
        var d = swag.DeviationsInOrder();
        int cols = d.Length;
        var sigma = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double low = 0;
                for (int c = 0; c < cols; c++) low += (double)d[c][i] * d[c][j];
                sigma[i, j] = scale * ((i == j ? Math.Max(sq[i] - m[i] * m[i], SwagMoments.DefaultVarianceFloor) : 0) + (cols >= 2 ? low / (cols - 1) : 0));
            }

        var draws = new double[samples, n];
        var output = _cpu.AllocateTensor(new TensorShape(n));
        for (int s = 0; s < samples; s++)
        {
            swag.Sample(mean, output, s, seed: 1234, scale);
            var v = _cpu.ToArray(output);
            for (int i = 0; i < n; i++) draws[s, i] = v[i];
        }
        for (int i = 0; i < n; i++)
        {
            double avg = Enumerable.Range(0, samples).Average(s => draws[s, i]);
            Assert.That(Math.Abs(avg - m[i]), Is.LessThanOrEqualTo(5 * Math.Sqrt(sigma[i, i] / samples) + 1e-6), $"sample mean of weight {i}");
            for (int j = 0; j < n; j++)
            {
                double cov = Enumerable.Range(0, samples).Sum(s => (draws[s, i] - m[i]) * (draws[s, j] - m[j])) / samples;
                // Standard error of a covariance estimate of a Gaussian: sqrt((σii σjj + σij²)/S); 5 of them, fixed seed.
                double se = Math.Sqrt((sigma[i, i] * sigma[j, j] + sigma[i, j] * sigma[i, j]) / samples);
                Assert.That(Math.Abs(cov - sigma[i, j]), Is.LessThanOrEqualTo(5 * se + 1e-9), $"covariance ({i}, {j}): {cov} vs {sigma[i, j]}");
            }
        }
        if (rank == 0) Assert.That(swag.Deviations.IsNull, "diagonal-only SWAG keeps no deviation ring");
    }

    [Test]
    public void SwagSamplesAreReproducibleBySeedAndIndexAndDifferAcrossThem()
    {
        int n = 300;
        using var swag = new SwagMoments(_cpu, n, rank: 3);
        var mean = Put(new float[n]);
        for (int s = 0; s < 4; s++) swag.Collect(Put(_rng.Floats(n)), mean);
        float[] Draw(int index, ulong seed)
        {
            var o = _cpu.AllocateTensor(new TensorShape(n));
            swag.Sample(mean, o, index, seed);
            return _cpu.ToArray(o);
        }
        var first = Draw(5, 9);
        Assert.That(Draw(5, 9), Is.EqualTo(first));
        Assert.That(Draw(5, 9), Is.Not.EqualTo(Draw(6, 9)));
        Assert.That(Draw(5, 9), Is.Not.EqualTo(Draw(5, 10)));
        Assert.Throws<InvalidOperationException>(() => new SwagMoments(_cpu, n, 2).Sample(mean, mean, 0, 1));
    }

    // ------------------------------------------------------------------ through the trainer

    private static NetworkBuilder SmallNet(int numClasses) => TinyRuns.Net("swag-net", numClasses);

    private static (ImageDataset Train, ImageDataset Test) Data() => TinyRuns.Data(200, 60, seed: 3);

    private static TrainingOptions Options(ulong seed) => new()
    {
        Model = "swag-net", Epochs = 4, SwaStart = 1, BatchSize = 50, Lr = 0.05, SwaLr = 0.02, Seed = seed,
        Average = AveragingKind.Swag, SwagRank = 2, SwagSamples = 3, Ensemble = false,
    };

    /// <summary>
    /// A closed form for the trainer's Bayesian model average, needing nothing of its recipe (which
    /// seeds, which loader epochs): without batch norm there is nothing to recompute per sample, and
    /// as the SWAG scale goes to 0 every sample is the SWA mean, so the BMA is the SWA model's own
    /// prediction. At the paper's scale it is not.
    /// </summary>
    [Test]
    public void SwagModelAverageOfABatchNormFreeNetTendsToTheSwaModelAsTheScaleVanishes()
    {
        var (train, test) = Data();
        static NetworkBuilder NoBatchNorm(int classes)
        {
            var b = new NetworkBuilder("swag-net-nobn", height: 16, width: 16);
            Node x = b.Relu(b.Conv(b.Input, "stem.conv", 8, kernel: 3, padding: 1, bias: true));
            b.Linear(b.GlobalAvgPool(x), "fc", classes);
            return b;
        }
        foreach (double scale in new[] { 1e-9, 0.5 })
        {
            var options = Options((ulong)Environment.TickCount) with { Model = "swag-net-nobn", SwagScale = scale };
            using var backend = new CpuBackend();
            using var trainer = Trainer.ForNetwork(options, NoBatchNorm, backend, train, test, null);
            Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
            var bma = trainer.SwagModelAverage();
            using var testData = new DeviceDataset(test, backend);
            using var loader = new BatchLoader(testData, options.BatchSize, shuffle: false, new AugmentSpec().ForEvaluation(), 0);
            using var evaluator = new Evaluator(trainer.Network);
            float[] swaProbabilities;
            using (trainer.Averager!.Bind()) swaProbabilities = evaluator.Predict(loader);
            var swa = CalibrationMetrics.Compute(swaProbabilities, test.Labels, test.NumClasses);
            if (scale < 1e-6)
            {
                Assert.That(bma.Accuracy, Is.EqualTo(swa.Accuracy), "vanishing scale: the BMA's accuracy is the SWA model's");
                Assert.That(bma.Nll, Is.EqualTo(swa.Nll).Within(1e-6), "vanishing scale: the BMA's NLL is the SWA model's");
                Assert.That(bma.Brier, Is.EqualTo(swa.Brier).Within(1e-6));
            }
            else Assert.That(Math.Abs(bma.Nll - swa.Nll), Is.GreaterThan(1e-5), "the paper's scale: the samples spread, the BMA is not the SWA model");
        }
    }

    [Test]
    public void SwagModelAverageEqualsTheMeanOfTheSampledModelsProbabilities()
    {
        var (train, test) = Data();
        var options = Options((ulong)Environment.TickCount);
        using var backend = new CpuBackend();
        using var trainer = Trainer.ForNetwork(options, SmallNet, backend, train, test, null);
        Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
        var averager = trainer.Averager!;
        Assert.That(averager.Swag!.Count, Is.EqualTo(4), "collected after epochs 1..4");
        var bma = trainer.SwagModelAverage();

        // Independently: each sample bound, its BN statistics recomputed as the trainer does, its probabilities averaged in double.
        using var testData = new DeviceDataset(test, backend);
        using var trainData = new DeviceDataset(train, backend);
        using var loader = new BatchLoader(testData, options.BatchSize, shuffle: false, new AugmentSpec().ForEvaluation(), options.Seed);
        using var bnLoader = new BatchLoader(trainData, options.BatchSize, shuffle: true, new AugmentSpec(), options.Seed ^ BatchNormRecompute.LoaderSeedSalt);
        using var evaluator = new Evaluator(trainer.Network);
        var sum = new double[test.Count * test.NumClasses];
        for (int s = 0; s < options.SwagSamples; s++)
            using (averager.BindSwagSample(s, Trainer.SwagSampleSeed(options), options.SwagScale))
            {
                BatchNormRecompute.Run(trainer.Network, bnLoader, options.Epochs + 1 + s, options.BnRecompute!.Value);
                var p = evaluator.Predict(loader);
                for (int i = 0; i < p.Length; i++) sum[i] += p[i];
            }
        var mean = sum.Select(v => (float)(v / options.SwagSamples)).ToArray();
        var expected = CalibrationMetrics.Compute(mean, test.Labels, test.NumClasses);
        Assert.That(bma.Accuracy, Is.EqualTo(expected.Accuracy));
        Assert.That(bma.Nll, Is.EqualTo(expected.Nll).Within(1e-6));
        Assert.That(bma.Ece, Is.EqualTo(expected.Ece).Within(1e-6));
        Assert.That(bma.Brier, Is.EqualTo(expected.Brier).Within(1e-6));
        // And the samples are not the mean: the BMA differs from the SWA model's own predictions.
        using (averager.Bind())
        {
            BatchNormRecompute.Run(trainer.Network, bnLoader, 0, options.BnRecompute!.Value);
            Assert.That(evaluator.Predict(loader), Is.Not.EqualTo(mean));
        }
    }

    [Test]
    public void SwagRunInterruptedAndResumedEndsWithTheBitsOfAnUninterruptedRun()
    {
        var (train, test) = Data();
        var options = Options((ulong)Environment.TickCount) with { Epochs = 5 }; // 5 collections into 2 slots: the ring wraps twice
        string root = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"swag-resume-{Guid.NewGuid():N}");
        string whole = Path.Combine(root, "whole"), parts = Path.Combine(root, "parts");
        try
        {
            List<ResultRow> wholeRows, partRows;
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, SmallNet, backend, train, test, whole))
            {
                Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
                wholeRows = trainer.FinalResults();
            }
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, SmallNet, backend, train, test, parts))
            {
                Assert.That(trainer.RunEpoch(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
                Assert.That(trainer.RunEpoch(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
                Assert.That(trainer.RunEpoch(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
            }
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, SmallNet, backend, train, test, parts))
            {
                trainer.Resume(parts, Checkpoint.ReadState(parts));
                Assert.That(trainer.Averager!.Swag!.Count, Is.EqualTo(3));
                Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
                partRows = trainer.FinalResults();
            }
            foreach (var file in new[] { Checkpoint.SwaFile, Checkpoint.SwagFile })
            {
                var a = SafeTensors.Read(Path.Combine(whole, file));
                var b = SafeTensors.Read(Path.Combine(parts, file));
                Assert.That(a.Tensors.Keys, Is.EquivalentTo(b.Tensors.Keys), file);
                foreach (var (name, entry) in a.Tensors)
                    Assert.That(b.Tensors[name].Data, Is.EqualTo(entry.Data), $"{file}: {name}");
                if (file == Checkpoint.SwagFile)
                {
                    Assert.That(a.Tensors.Keys, Does.Contain("square_mean.stem.conv.weight").And.Contain("deviations.fc.bias"));
                    Assert.That(a.Tensors["deviations.fc.bias"].Shape, Is.EqualTo(new[] { 2, 10 }));
                    Assert.That(a.Metadata["count"], Is.EqualTo("5"));
                    Assert.That(a.Metadata["next_slot"], Is.EqualTo("1"));
                }
            }
            Assert.That(partRows.Select(r => r.Method), Is.EqualTo(new[] { "SGD", "SWA", "SWAG" }));
            for (int i = 0; i < wholeRows.Count; i++)
            {
                Assert.That(partRows[i].TestAccuracy, Is.EqualTo(wholeRows[i].TestAccuracy), wholeRows[i].Method);
                Assert.That(partRows[i].Calibration!.Nll, Is.EqualTo(wholeRows[i].Calibration!.Nll), wholeRows[i].Method);
                Assert.That(partRows[i].Calibration!.Ece, Is.EqualTo(wholeRows[i].Calibration!.Ece), wholeRows[i].Method);
            }
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    [Test]
    public void SwagResumeWithAnotherRankIsRefusedNamingTheOption()
    {
        var (train, test) = Data();
        var options = Options(7) with { Epochs = 3 };
        string dir = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"swag-rank-{Guid.NewGuid():N}");
        try
        {
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, SmallNet, backend, train, test, dir))
            {
                trainer.RunEpoch(CancellationToken.None);
                trainer.RunEpoch(CancellationToken.None);
            }
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options with { SwagRank = 5 }, SmallNet, backend, train, test, dir))
            {
                var ex = Assert.Throws<DataFormatException>(() => trainer.Resume(dir, Checkpoint.ReadState(dir)));
                Assert.That(ex!.Message, Does.Contain("rank 2").And.Contain("rank 5").And.Contain(Checkpoint.SwagFile));
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
