using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// `train --resume DIR` where DIR holds no committed checkpoint says which of three cases it is:
/// a run in its first epoch now (in use), a run that stopped before its first checkpoint (start it
/// again), or no run at all — each exit 2, nothing written.
/// </summary>
public class ResumeWithoutCheckpointTests
{
    private string _dir = "";

    [SetUp]
    public void MakeDir()
    {
        _dir = CliRunner.TempDir("resume-nothing");
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private CliRunner.Result Resume()
    {
        var r = CliRunner.Run("train", "--resume", _dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(File.Exists(Path.Combine(_dir, "state.json")), Is.False);
        return r;
    }

    [Test]
    public void AFolderWithoutARunIsNotARunFolder() =>
        Assert.That(Resume().Error, Does.Contain("is not a cudaswa run folder"));

    [Test]
    public void ARunThatStoppedInItsFirstEpochIsToBeStartedAgain()
    {
        File.WriteAllText(Path.Combine(_dir, "train.log"), "12:00:00 cudaswa train: cpu\n");
        Assert.That(Resume().Error, Does.Contain("stopped before it committed its first checkpoint").And.Contain("run the same command again"));
    }

    [Test]
    public void ARunInItsFirstEpochIsInUse()
    {
        File.WriteAllText(Path.Combine(_dir, "train.log"), "12:00:00 cudaswa train: cpu\n");
        // What a running `cudaswa train` holds: its folder's lock.
        using var held = new FileStream(Path.Combine(_dir, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        Assert.That(Resume().Error, Does.Contain("is in use by another cudaswa process"));
    }
}
