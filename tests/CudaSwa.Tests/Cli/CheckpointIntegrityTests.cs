using System.Text.Json;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// The fault matrix: a run stopped inside epoch 3 (its current checkpoint there, the previous one
/// at the end of epoch 2), then one file of the current checkpoint damaged — for every file kind
/// (state, weights, momentum, SWA, SWAG, ensemble) × {a flipped bit in the data, one in the
/// header, truncation, deletion, zero length}. Every resume finds the damage, falls back to the
/// previous checkpoint (saying so, keeping the damaged one) and ends with exactly the files of the
/// uninterrupted run; with both generations damaged it refuses with exit 2 naming the file and
/// changes nothing. Outputs with a content hash are refused by eval when damaged, and
/// `cudaswa verify` names the damaged file.
/// </summary>
[NonParallelizable]
public class CheckpointIntegrityTests
{
    private string _root = "";
    private string _uninterrupted = "";
    private string _stopped = "";

    private static readonly string[] Run = ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "100", "--batch", "64",
        "--epochs", "4", "--swa-start", "2", "--average", "swag", "--swag-rank", "2", "--swag-samples", "2", "--seed", "11"];

    /// <summary>What a resume must reproduce: the published outputs of the uninterrupted run.</summary>
    private static readonly string[] Outputs = [Checkpoint.ModelFile, Checkpoint.SwaFile, Checkpoint.SwagFile];

    [OneTimeSetUp]
    public void TrainOnce()
    {
        _root = CliRunner.TempDir("integrity");
        _uninterrupted = Path.Combine(_root, "uninterrupted");
        _stopped = Path.Combine(_root, "stopped");
        var u = CliRunner.Run([.. Run, "--out", _uninterrupted]);
        Assert.That(u.ExitCode, Is.Zero, u.All);
        // 4 batches an epoch: 10 batches stop 2 batches into epoch 3.
        var s = CliRunner.Run([.. Run, "--out", _stopped, "--halt-after-batches", "10"]);
        Assert.That(s.ExitCode, Is.EqualTo(130), s.All);
        var state = CheckpointIntegrity.ReadState(Path.Combine(_stopped, Checkpoint.StateFile));
        Assert.That((state.NextEpoch, state.NextBatch), Is.EqualTo((2, 2)), "stopped inside epoch 3");
        Assert.That(state.PreviousCheckpointFolder, Is.Not.Null, "the generation before is kept");
        var current = Path.Combine(_stopped, state.CheckpointFolder);
        foreach (var file in new[] { Checkpoint.ModelFile, Checkpoint.OptimizerFile, Checkpoint.SwaFile, Checkpoint.SwagFile, Checkpoint.EnsembleFile })
            Assert.That(File.Exists(Path.Combine(current, file)), Is.True, $"the current checkpoint holds {file}");
    }

    [OneTimeTearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private string CopyOfStopped(string name)
    {
        string dir = Path.Combine(_root, name);
        foreach (var f in Directory.GetFiles(_stopped, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir, Path.GetRelativePath(_stopped, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        return dir;
    }

    public enum Fault { BitInData, BitInHeader, Truncated, Deleted, ZeroLength }

    /// <summary>Damages <paramref name="path"/>: safetensors' header is its first 8 + N bytes, a state file's "header" its first line.</summary>
    private static void Damage(string path, Fault fault)
    {
        var bytes = File.ReadAllBytes(path);
        switch (fault)
        {
            case Fault.BitInData:
                bytes[bytes.Length - 17] ^= 0x04;
                File.WriteAllBytes(path, bytes);
                break;
            case Fault.BitInHeader:
                // Inside the header's JSON text, on a digit or letter so it stays parseable where it can.
                int headerEnd = path.EndsWith(".json", StringComparison.Ordinal) ? bytes.Length / 3 : 8 + (int)BitConverter.ToUInt64(bytes, 0);
                int at = Enumerable.Range(16, headerEnd - 16).First(i => bytes[i] is >= (byte)'1' and <= (byte)'8');
                bytes[at] ^= 0x01;
                File.WriteAllBytes(path, bytes);
                break;
            case Fault.Truncated:
                File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
                break;
            case Fault.Deleted:
                File.Delete(path);
                break;
            case Fault.ZeroLength:
                File.WriteAllBytes(path, []);
                break;
        }
    }

    private static IEnumerable<TestCaseData> Matrix()
    {
        string[] kinds = [Checkpoint.StateFile, Checkpoint.ModelFile, Checkpoint.OptimizerFile, Checkpoint.SwaFile, Checkpoint.SwagFile, Checkpoint.EnsembleFile];
        foreach (var kind in kinds)
            foreach (var fault in Enum.GetValues<Fault>())
                yield return new TestCaseData(kind, fault).SetName($"Integrity_{Path.GetFileNameWithoutExtension(kind)}_{fault}");
    }

    [TestCaseSource(nameof(Matrix))]
    public void AResumeFindsTheDamageFallsBackAndEndsAsTheUninterruptedRun(string kind, Fault fault)
    {
        string dir = CopyOfStopped($"{Path.GetFileNameWithoutExtension(kind)}-{fault}");
        var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
        // The state file damaged is the run folder's own; every other kind is damaged in the current checkpoint.
        string target = kind == Checkpoint.StateFile ? Path.Combine(dir, kind) : Path.Combine(dir, state.CheckpointFolder, kind);
        Damage(target, fault);

        var r = CliRunner.Run("train", "--resume", dir);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        if (kind == Checkpoint.StateFile)
            Assert.That(r.Output, Does.Contain(Checkpoint.StateFile).And.Contain("resuming from the intact checkpoint"), "the fallback is reported");
        else
        {
            Assert.That(r.Output, Does.Contain($"{kind}: ").And.Contain("resuming from the intact checkpoint " + state.PreviousCheckpointFolder), "the fallback names the file and the checkpoint used");
            string kept = Path.Combine(dir, "checkpoints", Checkpoint.DamagedPrefix + Path.GetFileName(state.CheckpointFolder));
            Assert.That(Directory.Exists(kept), Is.True, "the damaged checkpoint is kept, renamed");
        }
        foreach (var output in Outputs)
            Assert.That(File.ReadAllBytes(Path.Combine(dir, output)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_uninterrupted, output))),
                $"{output} equals the uninterrupted run's");
    }

    [Test]
    public void Integrity_BothGenerationsDamagedIsRefusedNamingTheFileAndNothingChanges()
    {
        string dir = CopyOfStopped("both-damaged");
        var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
        Damage(Path.Combine(dir, state.CheckpointFolder, Checkpoint.ModelFile), Fault.BitInData);
        Damage(Path.Combine(dir, state.PreviousCheckpointFolder!, Checkpoint.OptimizerFile), Fault.Truncated);
        var before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith("train.log", StringComparison.Ordinal))
            .ToDictionary(f => f, CheckpointIntegrity.Digest);
        var r = CliRunner.Run("train", "--resume", dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain(Checkpoint.ModelFile).And.Contain("content hash mismatch").And.Contain("no intact earlier checkpoint"));
        var after = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith("train.log", StringComparison.Ordinal))
            .ToDictionary(f => f, CheckpointIntegrity.Digest);
        Assert.That(after, Is.EquivalentTo(before), "nothing renamed, rewritten or deleted");
    }

    [Test]
    public void Integrity_ARankThatDoesNotWriteTheFolderChoosesTheSameGenerationAndChangesNothing()
    {
        string dir = CopyOfStopped("reader-rank");
        var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
        Damage(Path.Combine(dir, state.CheckpointFolder, Checkpoint.SwaFile), Fault.BitInData);
        var before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, CheckpointIntegrity.Digest);
        var chosen = Checkpoint.ReadIntactState(dir, repair: false);
        Assert.That(chosen.CheckpointFolder, Is.EqualTo(state.PreviousCheckpointFolder), "the previous generation");
        var after = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, CheckpointIntegrity.Digest);
        Assert.That(after, Is.EquivalentTo(before), "nothing renamed or written");
        var repaired = Checkpoint.ReadIntactState(dir);
        Assert.That(repaired.CheckpointFolder, Is.EqualTo(chosen.CheckpointFolder), "the writing rank chooses the same");
    }

    [Test]
    public void Integrity_OneFlippedBitInConv1WeightNeverResumesSilently()
    {
        string dir = CopyOfStopped("conv1-flip");
        var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
        string model = Path.Combine(dir, state.CheckpointFolder, Checkpoint.ModelFile);
        var bytes = File.ReadAllBytes(model);
        long headerLength = (long)BitConverter.ToUInt64(bytes, 0);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        long begin = header.RootElement.GetProperty("conv1.weight").GetProperty("data_offsets")[0].GetInt64();
        bytes[8 + headerLength + begin + 6] ^= 0x20; // one bit of one conv1.weight value
        File.WriteAllBytes(model, bytes);
        var r = CliRunner.Run("train", "--resume", dir);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        Assert.That(r.Output, Does.Contain("model.safetensors: content hash mismatch"));
        Assert.That(File.ReadAllBytes(Path.Combine(dir, Checkpoint.SwaFile)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_uninterrupted, Checkpoint.SwaFile))));
    }

    [Test]
    public void Integrity_VerifyNamesTheDamagedFileAndEvalRefusesADamagedOutput()
    {
        var clean = CliRunner.Run("verify", _uninterrupted);
        Assert.That(clean.ExitCode, Is.Zero, clean.All);
        Assert.That(clean.Output, Does.Contain("nothing damaged").And.Contain("swag.safetensors: content hash matches"));

        string dir = CopyOfStopped("verify");
        var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
        Damage(Path.Combine(dir, state.CheckpointFolder, Checkpoint.SwagFile), Fault.BitInData);
        Damage(Path.Combine(dir, Checkpoint.SwaFile), Fault.BitInData);
        var r = CliRunner.Run("verify", dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Output, Does.Contain($"{state.CheckpointFolder} (current): {Checkpoint.SwagFile}: content hash mismatch"));
        Assert.That(r.Output, Does.Contain($"{Checkpoint.SwaFile}: ").And.Contain("damaged: content hash mismatch"));
        Assert.That(r.Output, Does.Contain($"{state.PreviousCheckpointFolder} (previous): ").And.Contain("as written"));

        var eval = CliRunner.Run("eval", "--weights", Path.Combine(dir, Checkpoint.SwaFile), "--device", "cpu");
        Assert.That(eval.ExitCode, Is.EqualTo(2), eval.All);
        Assert.That(eval.Error, Does.Contain("damaged: content hash mismatch"));
        var average = CliRunner.Run("average", "--weights", Path.Combine(dir, Checkpoint.SwaFile), Path.Combine(dir, Checkpoint.ModelFile),
            "--out", Path.Combine(dir, "avg.safetensors"), "--device", "cpu", "--bn-recompute", "none");
        Assert.That(average.ExitCode, Is.EqualTo(2), average.All);
        Assert.That(average.Error, Does.Contain("damaged: content hash mismatch"));
        Assert.That(File.Exists(Path.Combine(dir, "avg.safetensors")), Is.False);
    }

    [Test]
    public void Integrity_ACheckpointThatDoesNotFitIsRefusedWithExit4BeforeWritingAndTheRunResumesElsewhere()
    {
        string dir = Path.Combine(_root, "small-disk");
        // The first checkpoint fits; from the second on the disk is "full" (the check asks the file system otherwise).
        try
        {
            Checkpoint.FreeSpaceForTests = d => Checkpoint.HasGenerations(d) ? 100_000 : long.MaxValue;
            var r = CliRunner.Run([.. Run, "--out", dir]);
            Assert.That(r.ExitCode, Is.EqualTo(4), r.All);
            Assert.That(r.Error, Does.Contain("enough disk space").And.Contain("nothing was written").And.Contain("intact"));
        }
        finally { Checkpoint.FreeSpaceForTests = null; }
        var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
        Assert.That((state.NextEpoch, state.NextBatch), Is.EqualTo((1, 0)), "the epoch-1 checkpoint is the committed one");
        Assert.That(Directory.GetDirectories(Path.Combine(dir, "checkpoints")), Has.Length.EqualTo(1), "no second folder, not even a temporary one");
        var resumed = CliRunner.Run("train", "--resume", dir);
        Assert.That(resumed.ExitCode, Is.Zero, resumed.All);
        foreach (var output in Outputs)
            Assert.That(File.ReadAllBytes(Path.Combine(dir, output)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_uninterrupted, output))), output);
    }

    [Test]
    public void Integrity_OnARealSmallTmpfsTheRunStopsWithExit4AndItsCheckpointIntact()
    {
        string mount = Path.Combine(_root, "tmpfs");
        Directory.CreateDirectory(mount);
        // Sized to hold the first checkpoint (weights and momentum) and its outputs, not the one that adds the average.
        if (!Mount(mount, "3500k", out string why)) Assert.Ignore($"A tmpfs cannot be mounted here ({why}); the free-space check is covered with a simulated disk above.");
        try
        {
            string dir = Path.Combine(mount, "run");
            var r = CliRunner.Run([.. Run, "--out", dir]);
            Assert.That(r.ExitCode, Is.EqualTo(4), r.All);
            Assert.That(r.Error, Does.Contain("enough disk space").And.Contain("intact"));
            var state = CheckpointIntegrity.ReadState(Path.Combine(dir, Checkpoint.StateFile));
            Assert.That(CheckpointIntegrity.Problems(Path.Combine(dir, state.CheckpointFolder), state), Is.Empty, "the committed checkpoint is intact");
            // Moved to a larger disk, it finishes as if nothing happened.
            string moved = Path.Combine(_root, "moved");
            foreach (var f in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
            {
                string to = Path.Combine(moved, Path.GetRelativePath(dir, f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
            var resumed = CliRunner.Run("train", "--resume", moved);
            Assert.That(resumed.ExitCode, Is.Zero, resumed.All);
            foreach (var output in Outputs)
                Assert.That(File.ReadAllBytes(Path.Combine(moved, output)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_uninterrupted, output))), output);
        }
        finally { Unmount(mount); }
    }

    private static bool Mount(string dir, string size, out string why)
    {
        why = "";
        if (!OperatingSystem.IsLinux()) { why = "not Linux"; return false; }
        try
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mount", ["-t", "tmpfs", "-o", $"size={size}", "tmpfs", dir])
                { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit();
            why = p.StandardError.ReadToEnd().Trim();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception e) { why = e.Message; return false; }
    }

    private static void Unmount(string dir)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("umount", [dir]) { RedirectStandardError = true })!;
        p.WaitForExit();
    }
}
