using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// `train --resume DIR --epochs N` never changes the learning rate of an iteration already run:
/// a schedule that keeps the past rates lengthens the run and says so; one that spans the run's
/// length (cosine; the swa schedule without averaging) is refused with exit 2 before anything is written.
/// </summary>
public class HonestResumeTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("honest-resume");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private static readonly string[] Tiny =
        ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "100", "--batch", "64",
         "--epochs", "3", "--lr", "0.05", "--swa-lr", "0.02", "--seed", "3", "--no-ensemble"];

    private static string[] Column(string runDir, string name)
    {
        var lines = File.ReadAllLines(Path.Combine(runDir, "metrics.csv"));
        int c = Array.IndexOf(lines[0].Split(','), name);
        Assert.That(c, Is.GreaterThanOrEqualTo(0), $"metrics.csv has {name}");
        return [.. lines.Skip(1).Select(l => l.Split(',')[c])];
    }

    [Test]
    public void ASwaRunIsExtendedWithTheLearningRatesOfItsEpochsUnchanged()
    {
        string dir = Path.Combine(_root, "swa");
        var a = CliRunner.Run([.. Tiny, "--swa-start", "2", "--out", dir]);
        Assert.That(a.ExitCode, Is.Zero, a.All);
        var lrs = Column(dir, "lr");
        var losses = Column(dir, "train_loss");
        var b = CliRunner.Run("train", "--resume", dir, "--epochs", "5");
        Assert.That(b.ExitCode, Is.Zero, b.All);
        Assert.That(b.Output, Does.Contain("extending a finished run from 3 to 5 epochs"));
        Assert.That(Column(dir, "lr"), Has.Length.EqualTo(5));
        Assert.That(Column(dir, "lr").Take(3), Is.EqualTo(lrs), "the epochs already run keep their learning rates");
        Assert.That(Column(dir, "train_loss").Take(3), Is.EqualTo(losses));
        Assert.That(Column(dir, "lr").Skip(3), Is.All.EqualTo(lrs[^1]), "the averaging phase goes on at swa-lr");
    }

    [TestCase("cosine", 1)] // per iteration: the second iteration already differs
    [TestCase("swa", 3)]    // per epoch, t = epoch / epochs: epochs 1-2 sit at t <= 0.5 either way
    public void AnSgdRunWhoseScheduleSpansItsLengthIsRefused(string schedule, int firstChanged)
    {
        string dir = Path.Combine(_root, schedule);
        var a = CliRunner.Run([.. Tiny, "--sgd-only", "--schedule", schedule, "--out", dir]);
        Assert.That(a.ExitCode, Is.Zero, a.All);
        var before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        var b = CliRunner.Run("train", "--resume", dir, "--epochs", "6");
        Assert.That(b.ExitCode, Is.EqualTo(2), b.All);
        Assert.That(b.Error, Does.Contain("--epochs").And.Contain($"epoch {firstChanged},").And.Contain("new run"));
        foreach (var (file, bytes) in before)
            if (Path.GetFileName(file) != "train.log")
                Assert.That(File.ReadAllBytes(file), Is.EqualTo(bytes), $"{file} is untouched");
    }
}
