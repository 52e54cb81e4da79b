using System.Diagnostics;
using CudaSwa.Cli;
using CudaSwa.IO;
using NUnit.Framework;
using CudaSwa.Util;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// Every kind of bad option, bad file and bad environment through the CLI: the documented exit
/// code (2 bad input, 4 out of memory or disk, 0 for what is no error), a message that names the
/// option or file, and never an exception type. The full-disk and read-only cases run on small
/// tmpfs mounts (root only; ignored with the reason where mounting is not allowed).
/// </summary>
[NonParallelizable]
public class ExitCodeTests
{
    private string _root = "";

    private static readonly string[] Tiny =
        ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "50", "--batch", "50", "--epochs", "3", "--swa-start", "2"];

    /// <summary>Tiny with some options replaced or added (an option may appear only once).</summary>
    private static string[] Train(params string[] options)
    {
        var args = Tiny.ToList();
        for (int i = 0; i < options.Length; i += 2)
        {
            int at = args.IndexOf(options[i]);
            if (at >= 0) args[at + 1] = options[i + 1];
            else args.AddRange([options[i], options[i + 1]]);
        }
        return [.. args];
    }

    [SetUp]
    public void MakeRoot()
    {
        _root = CliRunner.TempDir("exit-codes");
        Directory.CreateDirectory(_root);
    }

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static CliRunner.Result Expect(int code, string[] args, params string[] mentions)
    {
        var r = CliRunner.Run(args);
        Assert.That(r.ExitCode, Is.EqualTo(code), $"cudaswa {string.Join(' ', args)}\n{r.All}");
        foreach (var m in mentions) Assert.That(r.All, Does.Contain(m), $"the message names {m}");
        Assert.That(r.All, Does.Not.Contain("Exception"), "no exception type reaches the user");
        return r;
    }

    [Test]
    public void ExitCodesAreDocumentedInTheReadme()
    {
        string? root = Support.Toolchain.RepoRoot();
        if (root is null) Assert.Ignore("README.md is not next to the tests (e.g. a GPU bundle).");
        string readme = File.ReadAllText(Path.Combine(root!, "README.md"));
        foreach (int code in new[] { ExitCodes.Ok, ExitCodes.InternalError, ExitCodes.BadInput, ExitCodes.Diverged, ExitCodes.OutOfResources, ExitCodes.Interrupted })
            Assert.That(readme, Does.Contain($"| {code} |"), $"exit code {code} in README's table");
    }

    [Test]
    public void BadOptionsAndPathsAreBadInput()
    {
        Expect(2, Train("--device", "cuda:abc"), "--device", "cuda:abc");
        Expect(2, Train("--device", "gpu"), "--device");
        Expect(2, Train("--out", ""), "--out");
        Expect(2, Train("--out", "/proc/cudaswa-cannot-be-here/run"), "--out", "/proc/cudaswa-cannot-be-here/run");
        string file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "x");
        Expect(2, Train("--out", file), "--out", "is a file");
        Expect(2, ["train", "--resume", Path.Combine(_root, "none")], "--resume", "does not exist");
        Expect(2, ["synth", "--out", "/proc/cudaswa-cannot-be-here"], "--out");
        Expect(2, ["eval", "--weights", _root, "--model", "resnet8", "--device", "cpu"], "--weights", "is a folder");
        Expect(2, ["eval", "--weights", Path.Combine(_root, "missing.safetensors"), "--model", "resnet8"], "--weights", "does not exist");
        Expect(2, ["bench", "--device", "cuda:x", "--models", "resnet8"], "--device");
    }

    [Test]
    public void AWeightsFileWithNaNIsRefusedUnlessAllowed()
    {
        string run = Path.Combine(_root, "run");
        Expect(0, Train("--epochs", "1", "--swa-start", "1", "--out", run));
        string weights = Path.Combine(run, "model.safetensors");
        var contents = SafeTensors.Read(weights);
        var broken = contents.Tensors.Values.Select(t => t.Name == "fc.bias" ? t with { Data = t.Data.Select((v, i) => i == 3 ? float.NaN : v).ToArray() } : t);
        string bad = Path.Combine(_root, "nan.safetensors");
        SafeTensors.Write(bad, broken, contents.Metadata);
        Expect(2, ["eval", "--weights", bad, "--model", "resnet8", "--device", "cpu", "--test-subset", "50"], bad, "'fc.bias'", "element 3", "--allow-nonfinite");
        Expect(0, ["eval", "--weights", bad, "--model", "resnet8", "--device", "cpu", "--test-subset", "50", "--allow-nonfinite"]);
        Expect(0, ["eval", "--weights", weights, "--model", "resnet8", "--device", "cpu", "--test-subset", "50"]);
    }

    [Test]
    public void ABatchTooLargeForMemoryIsOutOfResourcesNamingTheBatch()
    {
        if (File.ReadAllText("/proc/sys/vm/overcommit_memory").Trim() == "1")
            Assert.Ignore("vm.overcommit_memory=1: an impossible allocation would be granted and the process later killed by the kernel.");
        // The input batch alone is 36 GB: more than this machine has, refused at allocation.
        Expect(4, Train("--batch", "3000000", "--out", Path.Combine(_root, "big")), "--batch", "3000000", "Out of memory");
        Assert.That(Directory.Exists(Path.Combine(_root, "big")), Is.False, "nothing written");
    }

    [Test]
    public void ResumingWithTheSavedOptionsIsFineAndOtherValuesAreNamed()
    {
        string run = Path.Combine(_root, "run");
        Expect(130, Train("--out", run, "--halt-after-batches", "3"));
        Expect(2, ["train", "--resume", run, "--lr", "0.1"], "--lr", "saved 0.05", "given 0.1", "cannot be changed");
        Expect(2, ["train", "--resume", run, "--preset", "paper-vgg16"], "--preset");
        // The original command line plus --resume: every option equals the saved one.
        Expect(0, Train("--resume", run, "--out", run));
        Expect(0, ["train", "--resume", run], "is complete (3 of 3 epochs)");
    }

    // ---------------------------------------------------------------- environments: full and read-only disks

    private static bool Mount(string dir, string options, out string reason)
    {
        Directory.CreateDirectory(dir);
        var (code, output) = Support.Toolchain.Run("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
        reason = code == 0 ? "" : $"cannot mount a tmpfs here ({output.Trim()}); the full-disk and read-only cases need root";
        return code == 0;
    }

    private static void Unmount(string dir) => Support.Toolchain.Run("umount", ["-l", dir]);

    private static void Remount(string dir, string options)
    {
        var (code, output) = Support.Toolchain.Run("mount", ["-o", "remount," + options, dir]);
        Assert.That(code, Is.Zero, $"remount {options}: {output}");
    }

    /// <summary>
    /// A disk that fills up during the second checkpoint: exit 4, a message that says the last good
    /// checkpoint is intact and how to resume, no temporary files left; with space again, the resume
    /// finishes the run.
    /// </summary>
    [Test]
    public void ADiskFullDuringACheckpointIsOutOfResourcesAndTheRunResumes()
    {
        if (!OperatingSystem.IsLinux() || Support.Toolchain.OnPath("mount") is null) Assert.Ignore("needs Linux mount");
        string disk = Path.Combine(_root, "disk");
        if (!Mount(disk, "size=1200k", out string reason)) Assert.Ignore(reason);
        try
        {
            string run = Path.Combine(disk, "run");
            // The free-space check before each checkpoint is off here: this is the disk filling up during the write itself.
            CudaSwa.Training.Checkpoint.FreeSpaceForTests = _ => long.MaxValue;
            CliRunner.Result r;
            try { r = Expect(4, Train("--out", run), "full", "last good checkpoint", $"cudaswa train --resume {run}"); }
            finally { CudaSwa.Training.Checkpoint.FreeSpaceForTests = null; }
            Assert.That(r.Error, Does.Contain("(after epoch 1)"), "the first epoch's checkpoint fitted");
            Assert.That(Directory.GetFiles(run, "*" + AtomicFile.TempSuffix, SearchOption.AllDirectories), Is.Empty, "no temporary files left");
            Remount(disk, "size=16m");
            Expect(0, ["train", "--resume", run]);
            Assert.That(File.Exists(Path.Combine(run, "summary.json")), Is.True);
        }
        finally
        {
            Unmount(disk);
        }
    }

    /// <summary>A run folder on a read-only disk is reported as such, not as "another process holds the lock".</summary>
    [Test]
    public void AReadOnlyRunFolderIsNamedAsReadOnly()
    {
        if (!OperatingSystem.IsLinux() || Support.Toolchain.OnPath("mount") is null) Assert.Ignore("needs Linux mount");
        string disk = Path.Combine(_root, "disk");
        if (!Mount(disk, "size=16m", out string reason)) Assert.Ignore(reason);
        try
        {
            string run = Path.Combine(disk, "run");
            Expect(130, Train("--out", run, "--halt-after-batches", "3"));
            Remount(disk, "ro");
            var r = Expect(2, ["train", "--resume", run], run, "cannot be written", "Read-only file system");
            Assert.That(r.Error, Does.Not.Contain("Another cudaswa process"));
            Expect(2, Train("--out", Path.Combine(disk, "new")), "--out", "Read-only file system");
        }
        finally
        {
            Unmount(disk);
        }
    }
}
