using System.Collections.Concurrent;
using CudaSwa.IO;
using CudaSwa.Training;
using NUnit.Framework;
using CudaSwa.Util;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// A real `cudaswa train` process killed with SIGKILL at every file-system event from the end of
/// its first checkpoint on — the rest of the first epoch's outputs, the whole of a mid-run
/// checkpoint, the final epoch and the final output files — then `--resume`d: every resume exits
/// 0 and the run folder ends exactly like an uninterrupted run's: summary.json present,
/// model.safetensors and swa.safetensors byte-identical, metrics.csv identical apart from its
/// timing columns, no temporary file or folder left. The kill comes from the process itself at
/// its N-th event (CUDASWA_TEST_KILL_AT_FILE_EVENT), so every moment is hit deterministically.
/// </summary>
[NonParallelizable]
public class CrashResumeTests
{
    private static readonly string[] Args =
        ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "128", "--synthetic-test", "64", "--batch", "64", "--epochs", "3",
         "--swa-start", "2", "--seed", "7"];

    private string _root = "";

    [SetUp]
    public void MakeRoot()
    {
        _root = CliRunner.TempDir("crash");
        Directory.CreateDirectory(_root);
    }

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static (int ExitCode, string Output) Cudaswa(IEnumerable<string> args, Dictionary<string, string>? env = null)
    {
        var r = Support.CudaswaProcess.Run(args, env, 300_000);
        return (r.ExitCode, r.Output);
    }

    /// <summary>What must be identical between runs: the two weight files' bytes and metrics.csv without its timing columns.</summary>
    private static (byte[] Model, byte[] Swa, string[] Metrics) Outcome(string dir) =>
        (File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(dir, "swa.safetensors")),
         File.ReadAllLines(Path.Combine(dir, "metrics.csv")).Select(l => string.Join(",", l.Split(',').Take(12))).ToArray());

    [Test]
    public void AKillAtAnyFileEventIsRepairedByResume()
    {
        string reference = Path.Combine(_root, "reference"), log = Path.Combine(_root, "events.log");
        var (code, output) = Cudaswa([.. Args, "--out", reference], new() { ["CUDASWA_TEST_FILE_EVENTS"] = log });
        Assert.That(code, Is.Zero, output);
        var expected = Outcome(reference);
        var events = File.ReadAllLines(log).Select(l => l.Split('\t')).ToList();
        var commits = events.Where(e => e[1] == "renamed into place" && e[2] == Checkpoint.StateFile).Select(e => int.Parse(e[0])).ToList();
        Assert.That(commits, Has.Count.EqualTo(3), "one committed checkpoint per epoch");
        int first = commits[0] + 1, last = events.Count;
        TestContext.Out.WriteLine($"{events.Count} file events; killing at each of {first}..{last} (epoch 2's checkpoint: {commits[0] + 1}..{commits[1]}, final epoch from {commits[1] + 1})");

        var failures = new ConcurrentBag<string>();
        Parallel.For(first, last + 1, new ParallelOptions { MaxDegreeOfParallelism = 2 }, n =>
        {
            string dir = Path.Combine(_root, $"kill-{n}");
            var (killed, killOutput) = Cudaswa([.. Args, "--out", dir], new() { ["CUDASWA_TEST_KILL_AT_FILE_EVENT"] = n.ToString() });
            string at = $"kill at event {n} ({string.Join(" ", events[n - 1][1..])})";
            if (killed != 137) { failures.Add($"{at}: the process exited {killed}, not killed (137)\n{killOutput}"); return; }
            var (resumed, resumeOutput) = Cudaswa(["train", "--resume", dir]);
            if (resumed != 0) { failures.Add($"{at}: --resume exited {resumed}\n{resumeOutput}"); return; }
            if (!File.Exists(Path.Combine(dir, "summary.json"))) { failures.Add($"{at}: no summary.json after the resume"); return; }
            var got = Outcome(dir);
            if (!got.Model.SequenceEqual(expected.Model)) failures.Add($"{at}: model.safetensors differs from the uninterrupted run's");
            if (!got.Swa.SequenceEqual(expected.Swa)) failures.Add($"{at}: swa.safetensors differs from the uninterrupted run's");
            if (!got.Metrics.SequenceEqual(expected.Metrics)) failures.Add($"{at}: metrics.csv differs:\n{string.Join("\n", got.Metrics)}\nexpected\n{string.Join("\n", expected.Metrics)}");
            var stray = Directory.GetFiles(dir, "*" + AtomicFile.TempSuffix, SearchOption.AllDirectories)
                .Concat(Directory.GetDirectories(Path.Combine(dir, "checkpoints"), ".tmp-*")).ToList();
            if (stray.Count > 0) failures.Add($"{at}: left behind {string.Join(", ", stray)}");
            // Two generations stay: the committed checkpoint and the one before it (a resume's fallback).
            var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
            var kept = Directory.GetDirectories(Path.Combine(dir, "checkpoints")).Select(d => Path.Combine("checkpoints", Path.GetFileName(d))).Order().ToList();
            var generations = new[] { state.CheckpointFolder, state.PreviousCheckpointFolder }.OfType<string>().Order().ToList();
            if (!kept.SequenceEqual(generations)) failures.Add($"{at}: checkpoint folders {string.Join(", ", kept)}, not the two generations {string.Join(", ", generations)}");
            Directory.Delete(dir, recursive: true);
        });
        Assert.That(failures, Is.Empty, string.Join("\n\n", failures.OrderBy(f => f)));
    }
}
