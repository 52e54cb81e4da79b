using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>SWA end to end on a small net trained on the synthetic data (CPU).</summary>
public class SwaOnATrainedNetTests
{
    private static (double Loss, double Accuracy) Evaluate(Network net, BatchLoader loader)
    {
        using var evaluator = new Evaluator(net);
        return evaluator.Evaluate(loader);
    }

    [Test]
    public void RecomputingBatchNormDoesNotHurtTheSwaModelAndEnsemblesWork()
    {
        using var cpu = new CpuBackend();
        var (trainSet, testSet) = SyntheticCifar.Generate(1500, 500, seed: 11);
        using var train = new DeviceDataset(trainSet, cpu);
        using var test = new DeviceDataset(testSet, cpu);
        int batch = 64;
        using var trainLoader = new BatchLoader(train, batch, true, new AugmentSpec(), seed: 5);
        using var testLoader = new BatchLoader(test, batch, false, new AugmentSpec().ForEvaluation(), seed: 5);
        // BN recompute sees the training data as training did (augmented), like the SWA reference code.
        using var bnLoader = new BatchLoader(train, batch, true, new AugmentSpec(), seed: 5);
        using var net = ModelZoo.Create("resnet8", 10, cpu, batch, seed: 3);
        using var sgd = new Sgd(net, 0.9f, 5e-4f);
        using var step = new TrainingStep(net, sgd);
        using var swa = new WeightAverager(net);
        using var ensemble = new PredictionEnsemble(net, testLoader);
        var schedule = new SwaPaperSchedule(0.1, 6, swaStart: 4, swaLr: 0.02);
        var averaging = AveragingSchedule.Epochs(4);
        ulong global = 0;
        float[] statsAtSwaStart = [];
        var snapshots = new List<float[]>();
        for (int epoch = 0; epoch < 6; epoch++)
        {
            trainLoader.BeginEpoch(epoch);
            for (int i = 0; i < trainLoader.BatchCount; i++)
            {
                int b = trainLoader.Load(i, net.Input(batch), step.Labels);
                step.Run(b, (float)schedule.At(epoch, i, trainLoader.BatchCount), global++);
            }
            if (averaging.AfterEpoch(epoch))
            {
                if (swa.Count == 0) statsAtSwaStart = net.Buffers.ToHost();
                snapshots.Add(net.Parameters.ToHost());
                swa.Update();
                ensemble.AddSnapshot();
            }
        }
        Assert.That(swa.Count, Is.EqualTo(3));
        Assert.That(ensemble.Count, Is.EqualTo(3));
        // The average is the plain mean of the three snapshots (each weighted 1/3: a running update with 1/n instead of 1/(n+1) fails this).
        var average = swa.ParametersToHost();
        foreach (var e in net.ParameterLayout.Entries)
            Close.Check(average.AsSpan((int)e.Offset, (int)e.Length).ToArray(),
                Enumerable.Range((int)e.Offset, (int)e.Length).Select(i => snapshots.Average(w => (double)w[i])).ToArray(), 1e-7, 1e-5, $"SWA mean of {e.Name}");

        var sgdScore = Evaluate(net, testLoader);
        var sgdStats = net.Buffers.ToHost();
        (double Loss, double Accuracy) before, beforeStartStats, withFinalSgdStats, after;
        using (swa.Bind())
        {
            before = Evaluate(net, testLoader);                    // the SWA model's own statistics before recompute
            net.Buffers.FromHost(statsAtSwaStart);                 // what PyTorch's AveragedModel keeps (a copy made at SWA start)
            beforeStartStats = Evaluate(net, testLoader);
            net.Buffers.FromHost(sgdStats);                        // the last SGD model's statistics
            withFinalSgdStats = Evaluate(net, testLoader);
            BatchNormRecompute.Run(net, bnLoader, epochKey: 0);
            after = Evaluate(net, testLoader);
        }
        var ens = ensemble.Score();
        TestContext.Out.WriteLine($"SGD model: acc {sgdScore.Accuracy:P1} loss {sgdScore.Loss:F3}");
        TestContext.Out.WriteLine($"SWA before BN recompute (its own, reset statistics): acc {before.Accuracy:P1} loss {before.Loss:F3}");
        TestContext.Out.WriteLine($"SWA with statistics copied at SWA start (AveragedModel-style): acc {beforeStartStats.Accuracy:P1} loss {beforeStartStats.Loss:F3}");
        TestContext.Out.WriteLine($"SWA with the final SGD model's statistics: acc {withFinalSgdStats.Accuracy:P1} loss {withFinalSgdStats.Loss:F3}");
        TestContext.Out.WriteLine($"SWA after BN recompute: acc {after.Accuracy:P1} loss {after.Loss:F3}");
        TestContext.Out.WriteLine($"Prediction ensemble of 3 snapshots: acc {ens.Accuracy:P1} loss {ens.Loss:F3}");
        Assert.That(sgdScore.Accuracy, Is.GreaterThan(0.3), "the net learned something");
        Assert.That(after.Accuracy, Is.GreaterThanOrEqualTo(before.Accuracy), "after recompute vs before");
        Assert.That(after.Accuracy, Is.GreaterThanOrEqualTo(beforeStartStats.Accuracy), "after recompute vs statistics copied at SWA start");
        Assert.That(after.Loss, Is.LessThan(before.Loss));
        Assert.That(ens.Accuracy, Is.GreaterThan(0.3));
    }

    [Test]
    public void EnsembleScoreIsTheAverageOfSoftmaxPredictions()
    {
        using var cpu = new CpuBackend();
        var rng = new Fresh();
        var (_, testSet) = SyntheticCifar.Generate(10, 37, seed: (ulong)rng.Seed);
        using var test = new DeviceDataset(testSet, cpu);
        using var loader = new BatchLoader(test, 16, false, new AugmentSpec().ForEvaluation(), seed: 1);
        using var net = ModelZoo.Create("resnet8", 10, cpu, 16, seed: 2);
        using var ensemble = new PredictionEnsemble(net, loader);
        var sum = new double[37 * 10];
        for (int s = 0; s < 3; s++)
        {
            net.InitializeParameters((ulong)(rng.Seed + s));
            ensemble.AddSnapshot();
            var labels = cpu.AllocateTensor(new TensorShape(16), DType.Int32);
            loader.BeginEpoch(0);
            for (int i = 0; i < loader.BatchCount; i++)
            {
                int b = loader.Load(i, net.Input(16), labels);
                net.Forward(b, RunMode.Eval);
                var z = cpu.ToArray(net.Logits(b));
                for (int r = 0; r < b; r++)
                {
                    double max = z.Skip(r * 10).Take(10).Max();
                    double den = z.Skip(r * 10).Take(10).Sum(v => Math.Exp(v - max));
                    for (int j = 0; j < 10; j++) sum[(i * 16 + r) * 10 + j] += Math.Exp(z[r * 10 + j] - max) / den / 3;
                }
            }
        }
        double nll = 0;
        int correct = 0;
        for (int i = 0; i < 37; i++)
        {
            var row = sum.Skip(i * 10).Take(10).ToArray();
            if (Array.IndexOf(row, row.Max()) == testSet.Labels[i]) correct++;
            nll -= Math.Log(row[testSet.Labels[i]]);
        }
        var (loss, acc) = ensemble.Score();
        Assert.That(acc, Is.EqualTo(correct / 37.0).Within(1e-12), $"({rng})");
        Assert.That(loss, Is.EqualTo(nll / 37).Within(1e-5), $"({rng})");
    }
}
