using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// With output redirected (no live display), a long phase after the last epoch — SWAG's model
/// average — still says where it stands, on the console and in train.log, without a line per step.
/// </summary>
public class ProgressLinesTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("progress-lines");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    [Test]
    public void SwagsModelAverageReportsItselfWhenOutputIsRedirected()
    {
        string dir = Path.Combine(_root, "swag");
        var r = CliRunner.Run("train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "100", "--batch", "64",
            "--epochs", "2", "--swa-start", "1", "--average", "swag", "--swag-rank", "2", "--swag-samples", "4", "--no-ensemble", "--out", dir);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        Assert.That(r.Output, Does.Contain("SWAG model average: sample 1/4"), "the phase says it has started");
        int lines = r.Output.Split('\n').Count(l => l.Contains("SWAG model average: sample", StringComparison.Ordinal));
        Assert.That(lines, Is.LessThan(4), "a line when it starts and at most one per 10 s, not one per sample");
        Assert.That(File.ReadAllText(Path.Combine(dir, "train.log")), Does.Contain("SWAG model average: sample 1/4"));
    }
}
