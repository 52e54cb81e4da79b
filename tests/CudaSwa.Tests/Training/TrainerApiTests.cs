using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Training;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Training;

/// <summary>
/// The Trainer as an embedding app uses it: bad options fail with an ArgumentException naming the
/// TrainingOptions property (not a CLI flag), and a network of the app's own (Trainer.ForNetwork)
/// trains, checkpoints and resumes to the same bits as an uninterrupted run.
/// </summary>
[Category("Cpu")]
public class TrainerApiTests
{
    private static NetworkBuilder SmallNet(int numClasses, string name = "small-net")
    {
        var b = new NetworkBuilder(name, height: 16, width: 16);
        Node x = b.Relu(b.BatchNorm(b.Conv(b.Input, "stem.conv", 8, kernel: 3, padding: 1), "stem.bn"));
        Node y = b.BatchNorm(b.Conv(x, "block.conv", 8, kernel: 3, padding: 1), "block.bn");
        x = b.GlobalAvgPool(b.Relu(b.Add(y, x)));
        b.Linear(x, "fc", numClasses);
        return b;
    }

    private static (ImageDataset Train, ImageDataset Test) Data(ulong seed)
    {
        // The small net takes 16x16 images: the top-left quarter of each synthetic 32x32 image.
        return TinyRuns.Data(200, 60, seed);
    }


    public static IEnumerable<TestCaseData> BadOptions()
    {
        var ok = new TrainingOptions();
        yield return new TestCaseData(ok with { Model = "resnet7" }, nameof(TrainingOptions.Model));
        yield return new TestCaseData(ok with { Epochs = 0 }, nameof(TrainingOptions.Epochs));
        yield return new TestCaseData(ok with { BatchSize = 1 }, nameof(TrainingOptions.BatchSize));
        yield return new TestCaseData(ok with { Lr = double.NaN }, nameof(TrainingOptions.Lr));
        yield return new TestCaseData(ok with { Momentum = 1 }, nameof(TrainingOptions.Momentum));
        yield return new TestCaseData(ok with { WeightDecay = -1 }, nameof(TrainingOptions.WeightDecay));
        yield return new TestCaseData(ok with { EvalEvery = 0 }, nameof(TrainingOptions.EvalEvery));
        yield return new TestCaseData(ok with { Momentum = 0, Nesterov = true }, nameof(TrainingOptions.Nesterov));
        yield return new TestCaseData(ok with { Cycle = 0 }, nameof(TrainingOptions.Cycle));
        yield return new TestCaseData(ok with { AnnealEpochs = -1 }, nameof(TrainingOptions.AnnealEpochs));
        yield return new TestCaseData(ok with { AverageEverySteps = -2 }, nameof(TrainingOptions.AverageEverySteps));
        yield return new TestCaseData(ok with { Average = CudaSwa.Averaging.AveragingKind.Ema, EmaDecay = 1 }, nameof(TrainingOptions.EmaDecay));
        yield return new TestCaseData(ok with { EmaWarmup = true }, nameof(TrainingOptions.EmaWarmup));
        yield return new TestCaseData(ok with { SwaLrMin = 0.5 }, nameof(TrainingOptions.SwaLrMin));
        yield return new TestCaseData(ok with { SwagRank = -1 }, nameof(TrainingOptions.SwagRank));
        yield return new TestCaseData(ok with { EvaluateAt = [3, 0] }, nameof(TrainingOptions.EvaluateAt));
        yield return new TestCaseData(ok with { SwagSamples = 0 }, nameof(TrainingOptions.SwagSamples));
        yield return new TestCaseData(ok with { SwagScale = double.NaN }, nameof(TrainingOptions.SwagScale));
        yield return new TestCaseData(ok with { SwaLr = double.PositiveInfinity }, nameof(TrainingOptions.SwaLr));
        yield return new TestCaseData(ok with { SwaStart = 9 }, nameof(TrainingOptions.SwaStart));
        yield return new TestCaseData(ok with { Schedule = ScheduleKind.Cyclic, SwaLr = 1e-323, SwaLrMin = null }, nameof(TrainingOptions.Schedule));
    }

    [TestCaseSource(nameof(BadOptions))]
    public void TheProgramTranslatesEveryPropertyValidationCanNameIntoItsFlag(TrainingOptions options, string property)
    {
        var e = Assert.Throws<ArgumentException>(options.Validate)!;
        string message = CudaSwa.Cli.RunSettings.ToOption(e).Message;
        string flag = CudaSwa.Cli.RunSettings.FlagOf[property];
        Assert.That(message.StartsWith(flag + ": ", StringComparison.Ordinal) || message.StartsWith(flag + " ", StringComparison.Ordinal), Is.True,
            $"the message starts with the flag (\"{flag}: ...\", or \"{flag} must ...\" where the sentence names it anyway): {message}");
        Assert.That(message, Does.Not.StartWith($"{flag}: {flag} "), "the flag is not said twice");
        Assert.That(message, Does.Not.Contain(property + " "), $"the property name is translated too: {message}");
    }

    [TestCaseSource(nameof(BadOptions))]
    public void BadOptionsThrowAnArgumentExceptionNamingTheProperty(TrainingOptions options, string property)
    {
        var (train, test) = SyntheticCifar.Generate(trainCount: 20, testCount: 10, seed: 3);
        using var backend = new CpuBackend();
        var e = Assert.Throws<ArgumentException>(() => new Trainer(options, backend, train, test, outDir: null).Dispose())!;
        Assert.That(e.ParamName, Is.EqualTo(property));
        Assert.That(e.Message, Does.Not.Contain("--"), "engine messages name properties, not CLI flags");
        Assert.That(Assert.Throws<ArgumentException>(options.Validate)!.ParamName, Is.EqualTo(property));
    }

    [Test]
    public void ACustomNetworkNeedsItsNameInTheOptionsAndOnlyForNetworkAcceptsANameOutsideTheZoo()
    {
        var (train, test) = Data(seed: 4);
        using var backend = new CpuBackend();
        var options = new TrainingOptions { Model = "small-net", Epochs = 1, SwaStart = 1, BatchSize = 50 };
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(options, backend, train, test, null).Dispose())!.ParamName,
            Is.EqualTo(nameof(TrainingOptions.Model)), "the zoo constructor knows no small-net");
        var mismatch = Assert.Throws<ArgumentException>(() => Trainer.ForNetwork(options, c => SmallNet(c, "other-name"), backend, train, test, null).Dispose())!;
        Assert.That(mismatch.ParamName, Is.EqualTo(nameof(TrainingOptions.Model)));
        Assert.That(mismatch.Message, Does.Contain("other-name").And.Contain("small-net"));
        Assert.Throws<ArgumentNullException>(() => Trainer.ForNetwork(options, null!, backend, train, test, null));
        using var trainer = Trainer.ForNetwork(options, c => SmallNet(c), backend, train, test, null);
        Assert.That(trainer.Network.Parameters.Layout.Entries.Select(e => e.Name), Does.Contain("block.bn.weight").And.Contain("fc.bias"));
    }

    [Test]
    public void ACustomNetworkInterruptedAndResumedEndsWithTheBitsOfAnUninterruptedRun()
    {
        var (train, test) = Data(seed: 5);
        var options = new TrainingOptions { Model = "small-net", Epochs = 3, SwaStart = 2, BatchSize = 50, Lr = 0.05, SwaLr = 0.02, Seed = (ulong)Environment.TickCount };
        string root = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"trainer-api-{Guid.NewGuid():N}");
        string whole = Path.Combine(root, "whole"), parts = Path.Combine(root, "parts");
        try
        {
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, c => SmallNet(c), backend, train, test, whole))
                Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));

            var epochs = new List<int>();
            var events = new TrainerEvents { EpochCompleted = r => epochs.Add(r.Epoch) };
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, c => SmallNet(c), backend, train, test, parts, events))
                Assert.That(trainer.RunEpoch(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options, c => SmallNet(c), backend, train, test, parts, events))
            {
                trainer.Resume(parts, Checkpoint.ReadState(parts));
                Assert.That(trainer.NextEpoch, Is.EqualTo(1));
                Assert.That(trainer.Run(CancellationToken.None), Is.EqualTo(RunOutcome.Completed));
            }
            Assert.That(epochs, Is.EqualTo(new[] { 1, 2, 3 }), "EpochRecord.Epoch counts from 1, across the resume");

            var a = SafeTensors.Read(Path.Combine(whole, Checkpoint.SwaFile));
            var b = SafeTensors.Read(Path.Combine(parts, Checkpoint.SwaFile));
            Assert.That(a.Tensors.Keys, Is.EquivalentTo(b.Tensors.Keys));
            Assert.That(a.Tensors.Keys, Does.Contain("block.bn.running_var"));
            foreach (var (name, entry) in a.Tensors)
                Assert.That(b.Tensors[name].Data, Is.EqualTo(entry.Data), name);

            // A resume with another network is refused before anything is loaded.
            using (var backend = new CpuBackend())
            using (var trainer = Trainer.ForNetwork(options with { Model = "renamed" }, c => SmallNet(c, "renamed"), backend, train, test, parts))
                Assert.That(Assert.Throws<ArgumentException>(() => trainer.Resume(parts, Checkpoint.ReadState(parts)))!.Message, Does.Contain("small-net"));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
