using System.Text.Json.Nodes;
using CudaSwa.Cli.Commands;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>`cudaswa experiment` end to end on a tiny scaled grid, its resume and collect, and bad input that exits 2 writing nothing.</summary>
[Category("Cpu")]
public class ExperimentCommandTests
{
    private string _root = null!;

    [SetUp]
    public void SetUp() => _root = CliRunner.TempDir("experiment-cli");

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    // The quick experiment at half its epochs (budget 4, averaging after epoch 3: budgets at epochs 4, 5, 6) on 300 synthetic images.
    private static readonly string[] Tiny = ["experiment", "--scale", "0.5", "--synthetic-train", "300", "--synthetic-test", "100", "--device", "cpu"];

    [Test]
    public void ExperimentCommandRunsTheGridWritesTheTableAndResumesAndCollects()
    {
        string one = Path.Combine(_root, "one");
        var r = CliRunner.Run([.. Tiny, "--seeds", "2", "--out", one]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Output, Does.Contain("SCALED, SYNTHETIC"));
        foreach (var f in new[] { "table.md", "table.csv", ExperimentCommand.PlanFile, "experiment.png" })
            Assert.That(File.Exists(Path.Combine(one, f)), f);
        foreach (var m in new[] { "seed-1-sgd", "seed-1-swa", "seed-2-sgd", "seed-2-swa" })
            Assert.That(File.Exists(Path.Combine(one, m, "metrics.csv")), $"{m} is an ordinary run folder");
        var csv = File.ReadAllLines(Path.Combine(one, "table.csv"));
        Assert.That(csv[0], Is.EqualTo("model,data,column,epoch,mean_error_percent,std_error_percent,mean_nll,std_nll,seeds_with_values,errors_percent"));
        Assert.That(csv.Skip(1).Select(l => l.Split(',')[2]), Is.EqualTo(new[] { "SGD", "SWA 1 budget", "SWA 1.25 budgets", "SWA 1.5 budgets" }));
        Assert.That(csv.Skip(1).Select(l => l.Split(',')[3]), Is.EqualTo(new[] { "4", "4", "5", "6" }));
        Assert.That(csv.Skip(1).Select(l => l.Split(',')[8]), Has.All.EqualTo("2"));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(one, ExperimentCommand.PlanFile)))!;
        Assert.That(json["table"]!.AsArray(), Has.Count.EqualTo(4));
        // The SWA cell at 1 budget is the averaged model's evaluation after epoch 4 of each SWA run, in its own metrics.csv.
        var swaMetrics = File.ReadAllLines(Path.Combine(one, "seed-1-swa", "metrics.csv"));
        int col = Array.IndexOf(swaMetrics[0].Split(','), "swa_test_acc");
        double acc = double.Parse(swaMetrics[4].Split(',')[col], System.Globalization.CultureInfo.InvariantCulture);
        double error1 = json["table"]![1]!["members"]![0]!["error_percent"]!.GetValue<double>();
        Assert.That(error1, Is.EqualTo(100 * (1 - acc)).Within(1e-3));

        // Finished already: --resume trains nothing more and gives the same table.
        var again = CliRunner.Run(["experiment", "--resume", one]);
        Assert.That(again.ExitCode, Is.EqualTo(0), again.All);
        Assert.That(again.Output, Does.Contain("seed-2-swa: complete"));
        Assert.That(File.ReadAllLines(Path.Combine(one, "table.csv")), Is.EqualTo(csv));

        // Seed 2 alone in another folder, gathered with seed 1 of the first: the same table.
        string other = Path.Combine(_root, "other"), gathered = Path.Combine(_root, "gathered");
        Assert.That(CliRunner.Run([.. Tiny, "--seeds", "1", "--first-seed", "2", "--out", other]).ExitCode, Is.EqualTo(0));
        Directory.Delete(Path.Combine(one, "seed-2-sgd"), true);
        Directory.Delete(Path.Combine(one, "seed-2-swa"), true);
        var c = CliRunner.Run(["experiment", "--collect", one, other, "--out", gathered]);
        Assert.That(c.ExitCode, Is.EqualTo(0), c.All);
        Assert.That(File.ReadAllLines(Path.Combine(gathered, "table.csv")), Is.EqualTo(csv));
    }

    [Test]
    public void ExperimentMembersRunOneByOneAsJobArrayTasksAndTheLastWritesTheTable()
    {
        // The job array's setup: the folder, its definition and the script; nothing trained.
        string array = Path.Combine(_root, "array");
        var setup = CliRunner.Run([.. Tiny, "--seeds", "1", "--out", array, "--slurm-script"]);
        Assert.That(setup.ExitCode, Is.EqualTo(0), setup.All);
        string script = File.ReadAllText(Path.Combine(array, ExperimentCommand.SlurmFile));
        Assert.That(script, Does.StartWith("#!/bin/bash\n"));
        Assert.That(script, Does.Contain("#SBATCH --array=0-1\n"));
        Assert.That(script, Does.Contain($"experiment --resume '{Path.GetFullPath(array)}' --member \"$SLURM_ARRAY_TASK_ID\""));
        Assert.That(script, Does.Not.Match("(?m)^#SBATCH --gres"), "a CPU experiment asks for no GPU (the line is there, commented out)");
        Assert.That(script, Does.Contain("##SBATCH --gres=gpu:1"));
        Assert.That(File.Exists(Path.Combine(array, ExperimentCommand.PlanFile)));
        Assert.That(Directory.GetDirectories(array), Is.Empty, "no member trained by the setup");

        // Task 1 (the SWA run) by --member: only its folder appears, and no table yet.
        var swa = CliRunner.Run(["experiment", "--resume", array, "--member", "1"]);
        Assert.That(swa.ExitCode, Is.EqualTo(0), swa.All);
        Assert.That(Directory.GetDirectories(array).Select(Path.GetFileName), Is.EqualTo(new[] { "seed-1-swa" }));
        Assert.That(swa.Output, Does.Contain("1 of 2 members complete"));
        Assert.That(File.Exists(Path.Combine(array, "table.csv")), Is.False);

        // Task 0 from the scheduler's array index: the last member writes the table.
        var sgd = CliRunner.RunWith(v => v == ExperimentCommand.SlurmArrayIndex ? "0" : null, "experiment", "--resume", array);
        Assert.That(sgd.ExitCode, Is.EqualTo(0), sgd.All);
        Assert.That(sgd.Output, Does.Contain($"member 0 (from {ExperimentCommand.SlurmArrayIndex})"));
        Assert.That(sgd.Output, Does.Contain("All 2 members complete"));

        // The same table as the whole grid run by one command.
        string whole = Path.Combine(_root, "whole");
        Assert.That(CliRunner.Run([.. Tiny, "--seeds", "1", "--out", whole]).ExitCode, Is.EqualTo(0));
        Assert.That(File.ReadAllLines(Path.Combine(array, "table.csv")), Is.EqualTo(File.ReadAllLines(Path.Combine(whole, "table.csv"))));

        // A requeued task whose member is complete trains nothing.
        var again = CliRunner.Run(["experiment", "--resume", array, "--member", "1"]);
        Assert.That(again.ExitCode, Is.EqualTo(0), again.All);
        Assert.That(again.Output, Does.Contain("seed-1-swa is complete"));

        // Bad indices and combinations exit 2 naming what is wrong.
        var outside = CliRunner.Run(["experiment", "--resume", array, "--member", "2"]);
        Assert.That(outside.ExitCode, Is.EqualTo(2), outside.All);
        Assert.That(outside.All, Does.Contain("--member").And.Contain("0..1"));
        var notIndex = CliRunner.RunWith(v => v == ExperimentCommand.SlurmArrayIndex ? "x1" : null, "experiment", "--resume", array);
        Assert.That(notIndex.ExitCode, Is.EqualTo(2), notIndex.All);
        Assert.That(notIndex.All, Does.Contain(ExperimentCommand.SlurmArrayIndex));
        string fresh = Path.Combine(_root, "fresh");
        var noFolder = CliRunner.Run([.. Tiny, "--out", fresh, "--member", "0"]);
        Assert.That(noFolder.ExitCode, Is.EqualTo(2), noFolder.All);
        Assert.That(noFolder.All, Does.Contain("--resume"));
        Assert.That(Directory.Exists(fresh), Is.False, "nothing written");
    }

    [TestCase("--budgets", "1,x", "--budgets")]
    [TestCase("--budgets", "0.25,1", "averaging starts")]
    [TestCase("--seeds", "0", "--seeds")]
    [TestCase("--scale", "2", "--scale")]
    [TestCase("--preset", "paper-vgg16", "--data")]
    [TestCase("--preset", "nonsense", "--preset")]
    public void ExperimentCommandRefusesBadOptionsAndWritesNothing(string option, string value, string mention)
    {
        string dir = Path.Combine(_root, "bad");
        var r = CliRunner.Run([.. Tiny, option, value, "--out", dir]);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.All, Does.Contain(mention));
        Assert.That(Directory.Exists(dir), Is.False, "nothing written");
    }

    [Test]
    public void ExperimentCommandRefusesFoldersThatAreNotExperiments()
    {
        Directory.CreateDirectory(_root);
        var r = CliRunner.Run(["experiment", "--resume", _root]);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.All, Does.Contain(ExperimentCommand.PlanFile));
        var c = CliRunner.Run(["experiment", "--collect", _root]);
        Assert.That(c.ExitCode, Is.EqualTo(2), c.All);
        Assert.That(c.All, Does.Contain("--out"));
        Assert.That(Directory.GetFileSystemEntries(_root), Is.Empty);
    }
}
