using System.Security.Cryptography;
using CudaSwa.Cli.Download;
using CudaSwa.Data;
using CudaSwa.Tests.Data;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// `cudaswa data download` and `--data cifar10` against a loopback HTTP server serving a generated
/// archive (the only thing tests change is the catalog: its address and checksum). Offline.
/// </summary>
public class DataDownloadTests
{
    private string _root = "";
    private (ImageDataset Train, ImageDataset Test) _sets;
    private byte[] _archive = [];

    [SetUp]
    public void MakeArchive()
    {
        _root = CliRunner.TempDir("download");
        var rng = new Fresh();
        _sets = (CifarFixtures.RandomSet(40, 10, rng.Random, "train"), CifarFixtures.RandomSet(10, 10, rng.Random, "test"));
        string src = Path.Combine(_root, "src");
        CifarFixtures.WriteBinary(src, CifarKind.Cifar10, _sets.Train, _sets.Test);
        string file = Path.Combine(_root, "cifar-10-binary.tar.gz");
        CifarFixtures.TarGz(file, src, "cifar-10-batches-bin");
        _archive = File.ReadAllBytes(file);
        Directory.Delete(src, true);
        File.Delete(file);
    }

    [TearDown]
    public void Clean()
    {
        DatasetArchive.ForTests = null;
        ArchiveDownloader.ForTests = null;
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    /// <summary>Points the catalog at <paramref name="server"/> with <paramref name="md5"/> (default: the served archive's) and quick retries.</summary>
    private void Serve(LoopbackHttpServer server, string? md5 = null, int retries = 3)
    {
        DatasetArchive.ForTests = [new("cifar10", CifarKind.Cifar10, server.Url("cifar-10-binary.tar.gz"), _archive.Length, md5 ?? Convert.ToHexStringLower(MD5.HashData(_archive)))];
        ArchiveDownloader.ForTests = new ArchiveDownloader { Retries = retries, FirstDelay = TimeSpan.FromMilliseconds(5), StallTimeout = TimeSpan.FromSeconds(10) };
    }

    private void AssertUnpackedWhole(string dir)
    {
        var (train, test) = CifarSource.Load(Path.Combine(dir, "cifar-10-batches-bin"), CifarKind.Cifar10);
        Assert.That(train.Images, Is.EqualTo(_sets.Train.Images), "training images");
        Assert.That(train.Labels, Is.EqualTo(_sets.Train.Labels), "training labels");
        Assert.That(test.Images, Is.EqualTo(_sets.Test.Images), "test images");
        Assert.That(Directory.GetFiles(dir), Is.Empty, "archive deleted after unpacking, no .part left");
        Assert.That(Directory.GetDirectories(dir), Has.Length.EqualTo(1), "only the dataset's folder");
    }

    [Test]
    public void DownloadVerifiesUnpacksAndASecondDownloadIsANoOp()
    {
        using var server = new LoopbackHttpServer(_archive);
        Serve(server);
        string dir = Path.Combine(_root, "data");
        var r = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Output, Does.Contain("verified: MD5").And.Contain("train on it with: cudaswa train --data "));
        AssertUnpackedWhole(dir);
        var again = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(again.ExitCode, Is.EqualTo(0), again.All);
        Assert.That(again.Output, Does.Contain("already in"));
        Assert.That(server.Ranges, Has.Count.EqualTo(1), "the second download asked the server nothing");
    }

    [Test]
    public void ABrokenConnectionContinuesWithARangeRequest()
    {
        using var server = new LoopbackHttpServer(_archive) { CutRequests = 1, CutAfter = _archive.Length * 2 / 5 };
        Serve(server);
        string dir = Path.Combine(_root, "data");
        var r = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Output, Does.Contain("broke off"), "the retry is reported");
        Assert.That(server.Ranges, Is.EqualTo(new[] { null, $"bytes={server.CutAfter}-" }), "continued from the bytes it had, not from the start");
        AssertUnpackedWhole(dir);
    }

    [Test]
    public void AnInterruptedDownloadContinuesInTheNextRun()
    {
        using var server = new LoopbackHttpServer(_archive) { CutRequests = 1, CutAfter = _archive.Length / 3 };
        Serve(server, retries: 0);
        string dir = Path.Combine(_root, "data");
        var r = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("run the same command again"));
        Assert.That(new FileInfo(Path.Combine(dir, "cifar-10-binary.tar.gz.part")).Length, Is.EqualTo(server.CutAfter), "what arrived is kept");
        Assert.That(Directory.GetDirectories(dir), Is.Empty, "nothing unpacked");
        var next = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(next.ExitCode, Is.EqualTo(0), next.All);
        Assert.That(server.Ranges, Is.EqualTo(new[] { null, $"bytes={server.CutAfter}-" }));
        AssertUnpackedWhole(dir);
    }

    [Test]
    public void AChecksumMismatchExitsTwoAndLeavesNothing()
    {
        using var server = new LoopbackHttpServer(_archive);
        Serve(server, md5: new string('0', 32));
        string dir = Path.Combine(_root, "data");
        var r = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("does not match the dataset's published checksum").And.Contain(new string('0', 32)));
        Assert.That(Directory.GetFileSystemEntries(dir), Is.Empty, "no archive, no partial file, no data");
    }

    [Test]
    public void ACorruptArchiveWithTheRightChecksumIsRefusedAndNothingUnpacked()
    {
        var corrupt = _archive[..200].Concat(new byte[_archive.Length - 200]).ToArray();
        _archive = corrupt;
        using var server = new LoopbackHttpServer(corrupt);
        Serve(server);
        string dir = Path.Combine(_root, "data");
        var r = CliRunner.Run("data", "download", "cifar10", "--dir", dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("cifar-10-binary.tar.gz").And.Contain("damaged"));
        Assert.That(Directory.GetFileSystemEntries(dir), Is.Empty, "nothing unpacked, archive not kept");
    }

    [Test]
    public void ServerErrorsAreRetriedWhenTransientAndReportedWhenNot()
    {
        using (var server = new LoopbackHttpServer(_archive) { FailRequests = 2, FailStatus = 503 })
        {
            Serve(server);
            var r = CliRunner.Run("data", "download", "cifar10", "--dir", Path.Combine(_root, "a"));
            Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
            Assert.That(server.Ranges, Has.Count.EqualTo(3), "two 503s retried");
        }
        using (var server = new LoopbackHttpServer(_archive) { FailRequests = 9, FailStatus = 404 })
        {
            Serve(server);
            var r = CliRunner.Run("data", "download", "cifar10", "--dir", Path.Combine(_root, "b"));
            Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
            Assert.That(r.Error, Does.Contain("404"));
            Assert.That(server.Ranges, Has.Count.EqualTo(1), "a 404 is not retried");
        }
    }

    [Test]
    public void DataNamedByDatasetIsTheCachedCopyDownloadedOnce()
    {
        using var server = new LoopbackHttpServer(_archive);
        Serve(server);
        string cache = Path.Combine(_root, "cache");
        Func<string, string?> vars = name => name == DataCache.Variable ? cache : null;
        string[] train = ["train", "--data", "cifar10", "--model", "resnet8", "--epochs", "1", "--sgd-only", "--batch", "10", "--device", "cpu"];
        var first = CliRunner.RunWith(vars, [.. train, "--out", Path.Combine(_root, "run1")]);
        Assert.That(first.ExitCode, Is.EqualTo(0), first.All);
        Assert.That(first.Output, Does.Contain("not in the data cache yet; downloading it"));
        AssertUnpackedWhole(cache);
        var second = CliRunner.RunWith(vars, [.. train, "--out", Path.Combine(_root, "run2")]);
        Assert.That(second.ExitCode, Is.EqualTo(0), second.All);
        Assert.That(server.Ranges, Has.Count.EqualTo(1), "the cache is used, not downloaded again");
        Assert.That(File.ReadAllBytes(Path.Combine(_root, "run2", "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(_root, "run1", "model.safetensors"))),
            "the same data both times");

        var wrong = CliRunner.RunWith(vars, "train", "--data", "cifar100", "--out", Path.Combine(_root, "run3"));
        Assert.That(wrong.ExitCode, Is.EqualTo(2), wrong.All);
        Assert.That(wrong.Error, Does.Contain("add --dataset cifar100"));
    }

    [Test]
    public void OnATerminalTheDownloadShowsAProgressBar()
    {
        using var server = new LoopbackHttpServer(_archive);
        Serve(server);
        var output = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.Yes,
            ColorSystem = Spectre.Console.ColorSystemSupport.NoColors,
            Interactive = Spectre.Console.InteractionSupport.Yes,
            Out = new Spectre.Console.AnsiConsoleOutput(output),
        });
        console.Profile.Width = 120;
        var env = new CudaSwa.Cli.CliEnvironment { Console = console, Error = new StringWriter(), Interactive = true };
        string dir = Path.Combine(_root, "data");
        int code = CudaSwa.Cli.CliApp.Run(["data", "download", "cifar10", "--dir", dir], env);
        Assert.That(code, Is.Zero, output.ToString());
        Assert.That(output.ToString(), Does.Contain("━").And.Contain("100%").And.Not.Contain("downloaded "), "a bar drawn to completion, not the plain lines");
        AssertUnpackedWhole(dir);
    }

    [Test]
    public void HelpNamesTheDatasetsTheCacheAndTheChecksum()
    {
        var r = CliRunner.Run("data", "download", "--help");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Output, Does.Contain("cifar10").And.Contain("cifar100").And.Contain("MD5").And.Contain("--dir").And.Contain(DataCache.Variable));
        var bad = CliRunner.Run("data", "download", "mnist");
        Assert.That(bad.ExitCode, Is.EqualTo(2), bad.All);
        Assert.That(bad.Error, Does.Contain("mnist"));
    }
}
