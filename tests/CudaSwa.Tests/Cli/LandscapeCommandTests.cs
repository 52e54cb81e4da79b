using CudaSwa.Cli.Commands;
using CudaSwa.IO;
using CudaSwa.Landscape;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>`cudaswa landscape` end to end on a tiny run: the CSV schema and files, and bad input that exits 2 writing nothing.</summary>
[Category("Cpu")]
public class LandscapeCommandTests
{
    private string _root = null!;
    private string _run = null!;

    private static readonly string[] Tiny =
        ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "300", "--synthetic-test", "100", "--batch", "64",
         "--epochs", "3", "--swa-start", "2", "--lr", "0.05", "--swa-lr", "0.02", "--seed", "7", "--no-ensemble"];

    private static readonly string[] Small = ["--rays", "1", "--steps", "2", "--segment-points", "5", "--train-points", "100", "--device", "cpu"];

    [OneTimeSetUp]
    public void TrainOnce()
    {
        _root = CliRunner.TempDir("landscape");
        _run = Path.Combine(_root, "run");
        var r = CliRunner.Run([.. Tiny, "--out", _run]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    [Test]
    public void Integrity_LandscapeOutputsCarryTheirHashesAndVerifyNamesAChangedOne()
    {
        string run = Path.Combine(_root, "verified");
        foreach (var f in Directory.GetFiles(_run, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith("landscape", StringComparison.Ordinal)))
        {
            string to = Path.Combine(run, Path.GetRelativePath(_run, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        var r = CliRunner.Run(["landscape", "--run", run, .. Small, "--fresh"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        var ok = CliRunner.Run("verify", run);
        Assert.That(ok.ExitCode, Is.Zero, ok.All);
        Assert.That(ok.Output, Does.Contain($"{LandscapeCommand.CsvFile}: content hash matches").And.Contain($"{LandscapeCommand.PngFile}: content hash matches"));
        File.AppendAllText(Path.Combine(run, LandscapeCommand.CsvFile), "segment,0,0.25,1,0.5,1,0.5\n");
        var bad = CliRunner.Run("verify", run);
        Assert.That(bad.ExitCode, Is.EqualTo(2), bad.All);
        Assert.That(bad.Output, Does.Contain($"{LandscapeCommand.CsvFile}: damaged: content hash mismatch"));
    }

    private static string[] LandscapeFiles(string dir) =>
        [.. new[] { LandscapeCommand.CsvFile, LandscapeCommand.PngFile, LandscapeCommand.TextFile, LandscapeCommand.OptionsFile }.Where(f => File.Exists(Path.Combine(dir, f)))];

    [Test]
    public void LandscapeCommandWritesTheCsvPictureAndSummary()
    {
        var r = CliRunner.Run(["landscape", "--run", _run, .. Small, "--fresh"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        var lines = File.ReadAllLines(Path.Combine(_run, LandscapeCommand.CsvFile));
        Assert.That(lines[0], Is.EqualTo("kind,ray,position,train_loss,train_error,test_loss,test_error"));
        Assert.That(lines.Length - 1, Is.EqualTo(2 * 1 * (2 + 1) + 5), "2 solutions x 1 ray x (2 steps + the solution) + 5 segment points");
        var rows = LandscapeCommand.ReadCsv(Path.Combine(_run, LandscapeCommand.CsvFile));
        Assert.That(rows.Select(p => p.Kind).Distinct(), Is.EquivalentTo(new[] { LandscapePoint.RaySwa, LandscapePoint.RaySgd, LandscapePoint.Segment }));
        Assert.That(rows.Where(p => p.Kind == LandscapePoint.Segment).Select(p => p.Position), Is.EqualTo(new[] { -0.5, 0, 0.5, 1, 1.5 }));
        Assert.That(rows, Has.All.Matches<LandscapePoint>(p => p.TrainError is >= 0 and <= 1 && p.TestError is >= 0 and <= 1 && double.IsFinite(p.TrainLoss)));
        var png = File.ReadAllBytes(Path.Combine(_run, LandscapeCommand.PngFile));
        Assert.That(png.AsSpan(1, 3).ToArray(), Is.EqualTo("PNG"u8.ToArray()));
        string text = File.ReadAllText(Path.Combine(_run, LandscapeCommand.TextFile));
        Assert.That(text, Does.Contain("SWA").And.Contain("SGD").And.Contain("t = 0").And.Contain("the run's own SWA evaluation"));
        Assert.That(r.Output, Does.Contain("width"));
        // Progress: the first and the last point, and between them a line at most every 10 s (a small run: none).
        var progress = r.Output.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+\[\d+/\d+\]")).ToList();
        Assert.That(progress, Has.Count.InRange(2, 3), string.Join("\n", progress));
        Assert.That(progress[0], Does.Contain("[1/"));
        Assert.That(progress[^1], Does.Contain($"[{lines.Length - 1}/{lines.Length - 1}]"));

        // Run again with the same options: everything is already measured, nothing is recomputed, same file.
        var again = CliRunner.Run(["landscape", "--run", _run, .. Small]);
        Assert.That(again.ExitCode, Is.EqualTo(0), again.All);
        Assert.That(again.Output, Does.Contain("continuing"));
        Assert.That(File.ReadAllLines(Path.Combine(_run, LandscapeCommand.CsvFile)), Is.EqualTo(lines));
    }

    [Test]
    public void LandscapeCommandRefusesBadRunFoldersAndWritesNothing()
    {
        string notARun = Path.Combine(_root, "empty");
        Directory.CreateDirectory(notARun);
        var a = CliRunner.Run(["landscape", "--run", notARun, .. Small]);
        Assert.That(a.ExitCode, Is.EqualTo(2), a.All);
        Assert.That(a.All, Does.Contain("state.json"));
        Assert.That(LandscapeFiles(notARun), Is.Empty);

        // Weights of another model in the run folder: the tensor names or shapes do not fit.
        string other = Path.Combine(_root, "other");
        CopyDirectory(_run, other);
        foreach (var f in LandscapeFiles(other)) File.Delete(Path.Combine(other, f));
        var foreign = new Dictionary<string, string>();
        SafeTensors.Write(Path.Combine(other, "swa.safetensors"), [new SafeTensors.Entry("fc.weight", [3, 3], new float[9])], foreign);
        var b = CliRunner.Run(["landscape", "--run", other, .. Small]);
        Assert.That(b.ExitCode, Is.EqualTo(2), b.All);
        Assert.That(b.All, Does.Contain("swa.safetensors"));
        Assert.That(LandscapeFiles(other), Is.Empty);

        // An SGD-only run has no SWA solution.
        string sgdOnly = Path.Combine(_root, "sgd-only");
        var t = CliRunner.Run(["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "300", "--synthetic-test", "100", "--batch", "64",
            "--epochs", "1", "--sgd-only", "--out", sgdOnly]);
        Assert.That(t.ExitCode, Is.EqualTo(0), t.All);
        var c = CliRunner.Run(["landscape", "--run", sgdOnly, .. Small]);
        Assert.That(c.ExitCode, Is.EqualTo(2), c.All);
        Assert.That(c.All, Does.Contain("no swa.safetensors"));
        Assert.That(LandscapeFiles(sgdOnly), Is.Empty);
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to));
    }
}
