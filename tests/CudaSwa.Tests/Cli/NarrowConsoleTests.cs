using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// On an 80-column terminal a run's output stays readable: no line is wider than the console,
/// the epoch table wraps by whole columns, and no word or number is split — every word shown at
/// 80 columns is a word of the same run shown on a wide console.
/// </summary>
public class NarrowConsoleTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("narrow");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private static readonly char[] TableBorders = [' ', '│', '─', '┌', '┐', '└', '┘', '├', '┤', '┬', '┴', '┼', '╭', '╮', '╰', '╯', '|', '-', '+'];

    private static HashSet<string> Words(string text) =>
        text.Split('\n').SelectMany(l => l.Split(TableBorders, StringSplitOptions.RemoveEmptyEntries))
            .Select(w => w.Trim('(', ')', ',', ':', ';', '.')).Where(w => w.Length > 0).ToHashSet(StringComparer.Ordinal);

    [Test]
    public void At80ColumnsTheEpochTableAndFinalTableWrapByColumnsAndWords()
    {
        string[] run = ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "100", "--batch", "64",
                        "--epochs", "2", "--swa-start", "1", "--seed", "3"];
        var wide = CliRunner.RunAt(1000, _ => null, [.. run, "--out", Path.Combine(_root, "wide")]);
        var narrow = CliRunner.RunAt(80, _ => null, [.. run, "--out", Path.Combine(_root, "narrow")]);
        Assert.That(wide.ExitCode, Is.Zero, wide.All);
        Assert.That(narrow.ExitCode, Is.Zero, narrow.All);

        var lines = narrow.Output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.That(lines.Where(l => l.Length > 80), Is.Empty, "no line wider than 80 columns");
        var header = lines.FindIndex(l => l.TrimStart().StartsWith("epoch", StringComparison.Ordinal) && l.Contains("train-loss"));
        Assert.That(header, Is.GreaterThanOrEqualTo(0), "the epoch table's header:\n" + narrow.Output);
        Assert.That(lines[header + 1], Does.Contain("ens-acc").And.Contain("seconds"), "the header's columns that do not fit continue on the next line");
        Assert.That(lines.Any(l => l.Contains("1/2") && l.Contains('%')), Is.True, "the first epoch's row");

        // The output's own words are the wide run's (paths and timings differ between the runs: compare everything else).
        string[] varying = ["narrow"];
        var unknown = Words(narrow.Output).Except(Words(wide.Output))
            .Where(w => !varying.Any(v => w.Contains(v, StringComparison.Ordinal)) && !w.Any(char.IsDigit)).ToList();
        Assert.That(unknown, Is.Empty, "words split by wrapping:\n" + narrow.Output);
        Assert.That(narrow.Output, Does.Contain("accuracy").And.Contain("NLL").And.Contain("Brier"), "the final table");
        Assert.That(narrow.Output, Does.Contain("SWA: "), "the notes follow the table as text");
    }
}
