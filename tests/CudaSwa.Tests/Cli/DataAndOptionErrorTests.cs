using CudaSwa.Data;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// Bad files and bad options end with exit code 2, a message that names the problem, and
/// nothing written to --out.
/// </summary>
public class DataAndOptionErrorTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("errors");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private string Synth(int train = 60, int test = 20)
    {
        string data = Path.Combine(_root, "data");
        var r = CliRunner.Run("synth", "--out", data, "--train", train.ToString(), "--test", test.ToString());
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        return data;
    }

    private void ExpectBadInput(string[] args, params string[] messageParts)
    {
        string outDir = Path.Combine(_root, "out");
        var r = CliRunner.Run([.. args, "--out", outDir, "--device", "cpu"]);
        Assert.That(r.ExitCode, Is.EqualTo(2), $"exit code; output:\n{r.All}");
        foreach (var part in messageParts) Assert.That(r.Error, Does.Contain(part), "message");
        Assert.That(Directory.Exists(outDir), Is.False, "nothing may be written to --out");
    }

    [Test]
    public void MissingFileIsNamed()
    {
        string data = Synth();
        File.Delete(Path.Combine(data, "data_batch_3.bin"));
        ExpectBadInput(["train", "--data", data], "data_batch_3.bin", "is missing");
    }

    [Test]
    public void TruncatedFileIsNamedWithItsSize()
    {
        string data = Synth();
        string file = Path.Combine(data, "data_batch_2.bin");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..^100]);
        ExpectBadInput(["train", "--data", data], "data_batch_2.bin", $"{bytes.Length - 100} bytes", "not a whole number of 3073-byte");
    }

    [Test]
    public void CorruptLabelIsNamedWithTheRecord()
    {
        string data = Synth();
        string file = Path.Combine(data, "test_batch.bin");
        var bytes = File.ReadAllBytes(file);
        bytes[3073 * 4] = 42; // the label byte of record 4
        File.WriteAllBytes(file, bytes);
        ExpectBadInput(["train", "--data", data], "test_batch.bin", "record 4 has label 42");
    }

    [Test]
    public void EmptyFileIsNamed()
    {
        string data = Synth();
        File.WriteAllBytes(Path.Combine(data, "data_batch_1.bin"), []);
        ExpectBadInput(["train", "--data", data], "data_batch_1.bin", "is empty");
    }

    [Test]
    public void FolderWithoutCifarFilesListsWhatIsExpected()
    {
        Directory.CreateDirectory(Path.Combine(_root, "empty"));
        ExpectBadInput(["train", "--data", Path.Combine(_root, "empty")], "has no CIFAR-10 files", "test_batch.bin");
        ExpectBadInput(["train", "--data", Path.Combine(_root, "nope")], "does not exist");
    }

    [TestCase(new[] { "train", "--model", "resnet21" }, "--model", "unknown model 'resnet21'")]
    [TestCase(new[] { "train", "--lr", "-0.1" }, "--lr", "must be a number > 0")]
    [TestCase(new[] { "train", "--epochs", "4", "--swa-start", "9" }, "--swa-start must be in 1..4", "or --sgd-only for plain SGD")]
    [TestCase(new[] { "train", "--epochs", "1" }, "--swa-start must be in 1..1 (--epochs); got 5", "--sgd-only")]
    [TestCase(new[] { "train", "--preset", "fast" }, "--preset", "unknown preset 'fast'")]
    [TestCase(new[] { "train", "--preset", "paper-vgg16" }, "needs real data", "--data")]
    [TestCase(new[] { "train", "--schedule", "step" }, "--schedule", "'step' is not valid")]
    [TestCase(new[] { "train", "--batch", "1" }, "--batch", "must be >= 2")]
    [TestCase(new[] { "train", "--epochs", "three" }, "three")]
    [TestCase(new[] { "train", "--bogus" }, "--bogus")]
    [TestCase(new[] { "train", "--dataset", "cifar100" }, "cifar100 needs --data", "cudaswa data download cifar100")]
    [TestCase(new[] { "train", "--preset", "paper-preresnet164", "--dataset", "cifar100" }, "needs real data", "cudaswa data download cifar100", "--dataset cifar100 --data cifar100")]
    [TestCase(new[] { "train", "--average", "ema", "--ema-decay", "1.5" }, "--ema-decay", "(0, 1)")]
    [TestCase(new[] { "train", "--swa-lr", "1e400" }, "--swa-lr", "finite")]
    [TestCase(new[] { "train", "--momentum", "0.99999999" }, "--momentum", "float32")]
    [TestCase(new[] { "train", "--wd", "Infinity" }, "--wd", "finite")]
    [TestCase(new[] { "train", "--synthetic-train", "800000" }, "at most 500,000")]
    public void BadOptionsAreNamed(string[] args, params string[] parts) => ExpectBadInput(args, parts);

    [Test]
    public void BadDeviceIsNamed()
    {
        string outDir = Path.Combine(_root, "out");
        var r = CliRunner.Run("train", "--device", "tpu", "--out", outDir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("--device").And.Contain("'tpu'"));
        Assert.That(Directory.Exists(outDir), Is.False);
    }

    [Test]
    public void AskingForAMissingGpuIsABadInputWithTheReason()
    {
        if (CudaSwa.Devices.BackendFactory.TryCreateCuda(0, out var gpu, out _)) { gpu!.Dispose(); Assert.Ignore("A GPU is present: this checks the no-GPU path."); }
        string outDir = Path.Combine(_root, "out");
        var r = CliRunner.Run("train", "--device", "cuda", "--out", outDir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("--device cuda was asked for, but CUDA is unavailable").And.Contain("libcuda"));
        Assert.That(Directory.Exists(outDir), Is.False);
    }

    [Test]
    public void ExistingRunFolderIsNotOverwritten()
    {
        string outDir = Path.Combine(_root, "out");
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "state.json"), "{}");
        var r = CliRunner.Run("train", "--out", outDir, "--device", "cpu");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("already holds a run").And.Contain("--resume"));
        Assert.That(Directory.GetFileSystemEntries(outDir), Has.Length.EqualTo(1), "folder untouched");
    }

    [Test]
    public void SynthRefusesSetsTooLargeForMemory()
    {
        var r = CliRunner.Run("synth", "--out", Path.Combine(_root, "big"), "--train", "800000");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("at most 500,000"));
    }

    [Test]
    public void ResumeOnOtherDataIsRefused()
    {
        string outDir = Path.Combine(_root, "run");
        string[] tiny = ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-test", "20", "--batch", "50", "--epochs", "2", "--swa-start", "1", "--out", outDir];
        Assert.That(CliRunner.Run([.. tiny, "--synthetic-train", "100", "--halt-after-batches", "1"]).ExitCode, Is.EqualTo(130));
        // Same folder, but state.json's options edited to other data: the fingerprint no longer matches.
        string statePath = Path.Combine(outDir, "state.json");
        // (Sealed again: an edit the seal does not match would be damage, and the resume would fall back past it.)
        string edited = File.ReadAllText(statePath).Replace("\"synthetic_train\": 100", "\"synthetic_train\": 150");
        edited = System.Text.RegularExpressions.Regex.Replace(edited, ",\\s*\"state_xxh128\": \"[0-9a-f]{32}\"", "");
        File.WriteAllText(statePath, CudaSwa.Training.CheckpointIntegrity.Seal(edited));
        var r = CliRunner.Run("train", "--resume", outDir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("trained on other data"));
    }

    /// <summary>Every pixel counts: a training file changed in one image byte (labels untouched) is other data.</summary>
    [Test]
    public void ResumeOnDataChangedOnlyInPixelsIsRefused()
    {
        string data = Path.Combine(_root, "data"), outDir = Path.Combine(_root, "run");
        Assert.That(CliRunner.Run("synth", "--out", data, "--train", "200", "--test", "50").ExitCode, Is.Zero);
        var r = CliRunner.Run("train", "--device", "cpu", "--model", "resnet8", "--data", data, "--batch", "50", "--epochs", "2", "--swa-start", "1",
            "--out", outDir, "--halt-after-batches", "1");
        Assert.That(r.ExitCode, Is.EqualTo(130), r.All);
        string file = Path.Combine(data, "data_batch_3.bin");
        var bytes = File.ReadAllBytes(file);
        int pixel = 20 * 3073 + 1 + 2000; // record 20, a pixel (its label byte is at 20 * 3073)
        bytes[pixel] ^= 0x55;
        File.WriteAllBytes(file, bytes);
        var resumed = CliRunner.Run("train", "--resume", outDir);
        Assert.That(resumed.ExitCode, Is.EqualTo(2), resumed.All);
        Assert.That(resumed.Error, Does.Contain("trained on other data").And.Contain("every byte"));
        bytes[pixel] ^= 0x55;
        File.WriteAllBytes(file, bytes);
        Assert.That(CliRunner.Run("train", "--resume", outDir).ExitCode, Is.Zero, "the same bytes again: resumes");
    }

    [Test]
    public void ARunFolderIsLockedWhileInUse()
    {
        string dir = Path.Combine(_root, "locked");
        Directory.CreateDirectory(dir);
        using (CudaSwa.Cli.Output.RunLock.Acquire(dir))
        {
            var ex = Assert.Throws<CudaSwa.Cli.OptionException>(() => CudaSwa.Cli.Output.RunLock.Acquire(dir));
            Assert.That(ex!.Message, Does.Contain("Another cudaswa process"));
        }
        using (CudaSwa.Cli.Output.RunLock.Acquire(dir)) { } // released on dispose
        Assert.That(File.Exists(Path.Combine(dir, ".lock")), Is.False, "the lock file goes away with the lock");
    }

    [Test]
    public void ResumeOfAFolderWithoutStateIsNamed()
    {
        Directory.CreateDirectory(Path.Combine(_root, "notarun"));
        var r = CliRunner.Run("train", "--resume", Path.Combine(_root, "notarun"));
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("has no state.json"));
    }

    [Test]
    public void SynthWritesReadableCifarFilesThatRoundTrip()
    {
        string data = Synth(123, 45);
        foreach (var f in CifarBinary.Cifar10TrainFiles.Append(CifarBinary.Cifar10TestFile))
            Assert.That(new FileInfo(Path.Combine(data, f)).Length % 3073, Is.Zero, f);
        var (train, test) = CifarBinary.Load(data, CifarKind.Cifar10);
        var (expectedTrain, expectedTest) = SyntheticCifar.Generate(123, 45, CudaSwa.Cli.DataSources.SyntheticSeed);
        Assert.That(train.Count, Is.EqualTo(123));
        Assert.That(test.Count, Is.EqualTo(45));
        Assert.That(train.Labels, Is.EqualTo(expectedTrain.Labels));
        Assert.That(train.Images, Is.EqualTo(expectedTrain.Images));
        Assert.That(test.Images, Is.EqualTo(expectedTest.Images));
        Assert.That(test.Labels, Is.EqualTo(expectedTest.Labels));
    }

    [Test]
    public void Cifar100RecordsUseTheFineLabel()
    {
        string dir = Path.Combine(_root, "c100");
        Directory.CreateDirectory(dir);
        var record = new byte[3074];
        record[0] = 7; record[1] = 93; record[2] = 200; record[3073] = 17;
        File.WriteAllBytes(Path.Combine(dir, "train.bin"), [.. record, .. record]);
        File.WriteAllBytes(Path.Combine(dir, "test.bin"), record);
        var (train, test) = CifarBinary.Load(dir, CifarKind.Cifar100);
        Assert.That(train.Labels, Is.EqualTo(new[] { 93, 93 }));
        Assert.That(train.NumClasses, Is.EqualTo(100));
        Assert.That(test.Image(0)[0], Is.EqualTo(200));
        Assert.That(test.Image(0)[3071], Is.EqualTo(17));
    }
}
