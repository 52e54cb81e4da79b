using CudaSwa.Cli;
using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Experiments;
using CudaSwa.Layers;
using CudaSwa.Training;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Experiments;

/// <summary>
/// The experiment grid on the CPU: budget epochs of every paper preset, the table's mean ± std by
/// hand, a budget's SWA value against a separate run of that many epochs, an interrupted
/// experiment finished by a second run, and members run in separate folders gathered into the same table.
/// </summary>
[Category("Cpu")]
public class ExperimentTests
{
    [TestCase("paper-vgg16", 200, 161, new[] { 200, 250, 300 })]
    [TestCase("paper-preresnet110", 150, 126, new[] { 150, 188, 225 })]
    [TestCase("paper-preresnet164", 150, 126, new[] { 150, 188, 225 })]
    [TestCase("paper-wrn28x10", 200, 161, new[] { 200, 250, 300 })]
    public void ExperimentBudgetsLandOnThePapersEpochs(string preset, int budget, int swaStart, int[] epochs)
    {
        var p = Presets.Find(preset);
        var plan = ExperimentPlan.Create(p.Create(DatasetKind.Cifar10, true).Training, p.Create(DatasetKind.Cifar10, false).Training, [1, 1.25, 1.5], [1, 2, 3]);
        Assert.That(plan.BudgetEpochs, Is.EqualTo(budget));
        Assert.That(plan.Swa.SwaStart, Is.EqualTo(swaStart));
        Assert.That(plan.Budgets.Select(plan.EpochOf), Is.EqualTo(epochs));
        Assert.That(plan.Swa.Epochs, Is.EqualTo(epochs[^1]));
        Assert.That(plan.Swa.EvaluateAt, Is.EqualTo(epochs));
        Assert.That(plan.Members.Select(m => m.Folder), Is.EqualTo(new[] { "seed-1-sgd", "seed-1-swa", "seed-2-sgd", "seed-2-swa", "seed-3-sgd", "seed-3-swa" }));
        Assert.That(plan.Members.All(m => m.Options.Seed == m.Seed));
    }

    [Test]
    public void ExperimentPlanRefusesBudgetsBeforeTheAveragingAndRepeatedSeeds()
    {
        var p = Presets.Find("paper-vgg16");
        var sgd = p.Create(DatasetKind.Cifar10, true).Training;
        var swa = p.Create(DatasetKind.Cifar10, false).Training;
        Assert.That(Assert.Throws<ArgumentException>(() => ExperimentPlan.Create(sgd, swa, [0.5, 1], [1]))!.Message, Does.Contain("after the averaging starts"));
        Assert.Throws<ArgumentException>(() => ExperimentPlan.Create(sgd, swa, [1.5, 1.25], [1]));
        Assert.Throws<ArgumentException>(() => ExperimentPlan.Create(sgd, swa, [1], [4, 4]));
        Assert.Throws<ArgumentException>(() => ExperimentPlan.Create(swa, swa, [1], [1]));
    }

    [Test]
    public void ExperimentTableMeanAndStdMatchTheHandComputation()
    {
        var p = Presets.Find("paper-preresnet110");
        var plan = ExperimentPlan.Create(p.Create(DatasetKind.Cifar10, true).Training, p.Create(DatasetKind.Cifar10, false).Training, [1, 1.5], [1, 2, 3]);
        TrainingState State(params EpochRecord[] history) => new() { History = [.. history] };
        EpochRecord Sgd(int epoch, double accuracy, double loss) => new EpochRecord { Epoch = epoch }.WithScore(new ModelScore(ScoredModel.Trained, "SGD", loss, accuracy, null, null));
        EpochRecord Swa(int epoch, double accuracy, double loss) => new EpochRecord { Epoch = epoch }.WithScore(new ModelScore(ScoredModel.Average, "SWA", loss, accuracy, null, null));
        var states = new Dictionary<(ulong, string), TrainingState>
        {
            [(1, "sgd")] = State(Sgd(150, 0.90, 0.40)),
            [(2, "sgd")] = State(Sgd(150, 0.92, 0.30)),
            [(3, "sgd")] = State(Sgd(150, 0.94, 0.20)),
            [(1, "swa")] = State(Swa(150, 0.93, 0.25), Swa(225, 0.95, 0.2)),
            [(2, "swa")] = State(Swa(150, 0.95, 0.21)),
        };
        var t = ExperimentTable.Aggregate(plan, states);
        Assert.That(t.Columns, Is.EqualTo(new[] { "SGD", "SWA 1 budget", "SWA 1.5 budgets" }));
        Assert.That(t.ColumnEpochs, Is.EqualTo(new[] { 150, 150, 225 }));
        // SGD errors 10, 8, 6 %: mean 8, sample std sqrt(((2)^2 + 0 + (2)^2) / 2) = 2.
        Assert.That(t.Cells[0].MeanError!.Value, Is.EqualTo(8).Within(1e-9));
        Assert.That(t.Cells[0].StdError!.Value, Is.EqualTo(2).Within(1e-9));
        Assert.That(t.Cells[0].MeanNll!.Value, Is.EqualTo(0.3).Within(1e-12));
        Assert.That(t.Cells[0].StdNll!.Value, Is.EqualTo(0.1).Within(1e-12));
        // SWA 1 budget: 7 and 5 %, seed 3 missing: mean 6, std sqrt(2).
        Assert.That(t.Cells[1].Count, Is.EqualTo(2));
        Assert.That(t.Cells[1].MeanError!.Value, Is.EqualTo(6).Within(1e-9));
        Assert.That(t.Cells[1].StdError!.Value, Is.EqualTo(Math.Sqrt(2)).Within(1e-9));
        Assert.That(t.Cells[1].Errors[2], Is.Null);
        // SWA 1.5 budgets: one value, no std.
        Assert.That(t.Cells[2].MeanError!.Value, Is.EqualTo(5).Within(1e-9));
        Assert.That(t.Cells[2].StdError, Is.Null);
    }

    // ------------------------------------------------------------------ real runs of a small network

    private static NetworkBuilder SmallNet(int numClasses) => TinyRuns.Net("experiment-net", numClasses);

    private static (ImageDataset Train, ImageDataset Test) Data() => TinyRuns.Data(150, 50, seed: 8);

    private static ExperimentPlan SmallPlan(params ulong[] seeds)
    {
        var sgd = new TrainingOptions { Model = "experiment-net", SgdOnly = true, SwaStart = null, SwaLr = null, Epochs = 4, BatchSize = 50, Lr = 0.05, Ensemble = false };
        var swa = new TrainingOptions { Model = "experiment-net", SwaStart = 2, SwaLr = 0.02, BatchSize = 50, Lr = 0.05, Ensemble = false };
        return ExperimentPlan.Create(sgd, swa, [1, 1.5], seeds); // budgets at epochs 4 and 6
    }

    private static string Temp(string name) => Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"{name}-{Guid.NewGuid():N}");

    [Test]
    public void ExperimentSwaValueAtABudgetEqualsASeparateRunOfThatManyEpochs()
    {
        var (train, test) = Data();
        var plan = SmallPlan((ulong)Environment.TickCount);
        string dir = Temp("experiment-budget");
        try
        {
            using var backend = new CpuBackend();
            var table = Experiment.RunForNetwork(plan, SmallNet, backend, train, test, dir);
            var member = plan.Members.Single(m => m.Kind == ExperimentPlan.SwaKind);
            using var separate = Trainer.ForNetwork(member.Options with { Epochs = plan.EpochOf(1), EvaluateAt = null }, SmallNet, backend, train, test, null);
            Assert.That(separate.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
            var last = separate.State.History[^1];
            Assert.That(table.Cells[1].Errors[0], Is.EqualTo(100 * (1 - last.Average!.Accuracy)), "SWA at 1 budget = a separate 4-epoch run, bit for bit");
            Assert.That(table.Cells[1].Nlls[0], Is.EqualTo(last.Average!.Loss));
            var sgd = plan.Members.Single(m => m.Kind == ExperimentPlan.SgdKind);
            using var sgdRun = Trainer.ForNetwork(sgd.Options, SmallNet, backend, train, test, null);
            sgdRun.Run(CancellationToken.None);
            Assert.That(table.Cells[0].Nlls[0], Is.EqualTo(sgdRun.State.History[^1].Trained!.Loss));
            Assert.That(table.Cells[2].Errors[0], Is.Not.Null);
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    [Test]
    public void ExperimentInterruptedThenRunAgainFinishesOnlyWhatWasMissing()
    {
        var (train, test) = Data();
        var plan = SmallPlan(1, 2);
        string whole = Temp("experiment-whole"), parts = Temp("experiment-parts");
        try
        {
            using var backend = new CpuBackend();
            var expected = Experiment.RunForNetwork(plan, SmallNet, backend, train, test, whole);
            using (var cancel = new CancellationTokenSource())
            {
                int epochs = 0;
                // Stop during the third member (seed 2's SGD run): members 1 and 2 complete, 3 half done, 4 missing.
                var partial = Experiment.RunForNetwork(plan, SmallNet, backend, train, test, parts,
                    _ => new TrainerEvents { EpochCompleted = _ => { if (++epochs == 4 + 6 + 2) cancel.Cancel(); } }, cancel.Token);
                Assert.That(partial.Cells[0].Errors[1], Is.Null, "seed 2's SGD run was stopped before its budget");
            }
            var savedAt = Checkpoint.ReadState(Path.Combine(parts, "seed-1-swa")).SavedAt;
            var finished = Experiment.RunForNetwork(plan, SmallNet, backend, train, test, parts);
            Assert.That(Checkpoint.ReadState(Path.Combine(parts, "seed-1-swa")).SavedAt, Is.EqualTo(savedAt), "a complete member is not trained again");
            for (int c = 0; c < expected.Cells.Count; c++)
            {
                Assert.That(finished.Cells[c].Errors, Is.EqualTo(expected.Cells[c].Errors), expected.Columns[c]);
                Assert.That(finished.Cells[c].Nlls, Is.EqualTo(expected.Cells[c].Nlls), expected.Columns[c]);
            }
        }
        finally
        {
            foreach (var d in new[] { whole, parts }) try { Directory.Delete(d, true); } catch (IOException) { }
        }
    }

    [Test]
    public void ExperimentCollectOfSeedsRunInSeparateFoldersGivesTheTableOfOneExperiment()
    {
        var (train, test) = Data();
        string one = Temp("experiment-one"), a = Temp("experiment-a"), b = Temp("experiment-b");
        try
        {
            using var backend = new CpuBackend();
            var together = Experiment.RunForNetwork(SmallPlan(5, 6), SmallNet, backend, train, test, one);
            Experiment.RunForNetwork(SmallPlan(5), SmallNet, backend, train, test, a);
            Experiment.RunForNetwork(SmallPlan(6), SmallNet, backend, train, test, b);
            var gathered = Experiment.Collect(SmallPlan(5, 6), [a, b]);
            for (int c = 0; c < together.Cells.Count; c++)
            {
                Assert.That(gathered.Cells[c].Errors, Is.EqualTo(together.Cells[c].Errors), together.Columns[c]);
                Assert.That(gathered.Cells[c].MeanError, Is.EqualTo(together.Cells[c].MeanError));
                Assert.That(gathered.Cells[c].StdError, Is.EqualTo(together.Cells[c].StdError));
            }
        }
        finally
        {
            foreach (var d in new[] { one, a, b }) try { Directory.Delete(d, true); } catch (IOException) { }
        }
    }
}
