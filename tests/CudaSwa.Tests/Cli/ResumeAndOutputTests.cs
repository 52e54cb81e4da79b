using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using CudaSwa.IO;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>Resume reproduces an uninterrupted run exactly; the run folder holds the promised files.</summary>
public class ResumeAndOutputTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("resume");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    // 300 images in batches of 64: 5 batches per epoch (the last has 44), 3 epochs, SWA after epochs 2 and 3.
    private static readonly string[] Tiny =
        ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "300", "--synthetic-test", "100", "--batch", "64",
         "--epochs", "3", "--swa-start", "2", "--lr", "0.05", "--swa-lr", "0.02", "--seed", "7"];

    [Test]
    public void ResumeAfterAnInterruptReproducesTheUninterruptedRunExactly()
    {
        string straight = Path.Combine(_root, "straight"), broken = Path.Combine(_root, "broken");
        var a = CliRunner.Run([.. Tiny, "--out", straight]);
        Assert.That(a.ExitCode, Is.EqualTo(0), a.All);

        // Interrupted mid-epoch (batch 2 of epoch 2), like Ctrl-C: exit 130, a checkpoint, a resume hint.
        var b = CliRunner.Run([.. Tiny, "--out", broken, "--halt-after-batches", "7"]);
        Assert.That(b.ExitCode, Is.EqualTo(130), b.All);
        Assert.That(b.All, Does.Contain("--resume " + broken));
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(broken, "state.json"))).RootElement;
        Assert.That(state.GetProperty("next_epoch").GetInt32(), Is.EqualTo(1));
        Assert.That(state.GetProperty("next_batch").GetInt32(), Is.EqualTo(2));
        Assert.That(state.GetProperty("checkpoint_folder").GetString(), Does.StartWith(Path.Combine("checkpoints", "epoch-0002-batch-00002-")),
            "named as the console counts: 2 batches into epoch 2");
        var finished = JsonDocument.Parse(File.ReadAllText(Path.Combine(straight, "state.json"))).RootElement;
        Assert.That(finished.GetProperty("checkpoint_folder").GetString(), Does.StartWith(Path.Combine("checkpoints", "after-epoch-0003-")));

        var c = CliRunner.Run("train", "--resume", broken);
        Assert.That(c.ExitCode, Is.EqualTo(0), c.All);

        foreach (var file in new[] { "model.safetensors", "swa.safetensors" })
            Assert.That(File.ReadAllBytes(Path.Combine(broken, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(straight, file))), $"{file} must be bit-identical");
        var metricsA = File.ReadAllLines(Path.Combine(straight, "metrics.csv")).Select(StripTimes);
        var metricsC = File.ReadAllLines(Path.Combine(broken, "metrics.csv")).Select(StripTimes);
        Assert.That(metricsC, Is.EqualTo(metricsA), "losses and accuracies per epoch");
    }

    /// <summary>
    /// LAWA keeps its last K snapshots in the checkpoint: with K = 2 and averaging after every
    /// epoch, a stop inside epoch 3 must bring back epoch 2's snapshot, which the final average needs.
    /// </summary>
    [Test]
    public void LawaResumesBitForBitWithItsRing()
    {
        string[] lawa = [.. Tiny.Select(a => a == "--swa-start" ? "--lawa-k" : a), "--average", "lawa", "--swa-start", "1"]; // --lawa-k 2 where Tiny has --swa-start 2
        string straight = Path.Combine(_root, "lawa-straight"), broken = Path.Combine(_root, "lawa-broken");
        var a = CliRunner.Run([.. lawa, "--out", straight]);
        Assert.That(a.ExitCode, Is.EqualTo(0), a.All);
        Assert.That(a.Output, Does.Contain("LAWA").And.Contain("average of the last 2 of 3 models"));
        var b = CliRunner.Run([.. lawa, "--out", broken, "--halt-after-batches", "12"]);
        Assert.That(b.ExitCode, Is.EqualTo(130), b.All);
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(broken, "state.json"))).RootElement;
        Assert.That(state.GetProperty("next_epoch").GetInt32(), Is.EqualTo(2), "stopped inside epoch 3");
        var ring = SafeTensors.Read(Path.Combine(broken, state.GetProperty("checkpoint_folder").GetString()!, "lawa.safetensors"));
        Assert.That(ring.Metadata["count"], Is.EqualTo("2"));
        var c = CliRunner.Run("train", "--resume", broken);
        Assert.That(c.ExitCode, Is.EqualTo(0), c.All);
        foreach (var file in new[] { "model.safetensors", "swa.safetensors" })
            Assert.That(File.ReadAllBytes(Path.Combine(broken, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(straight, file))), $"{file} must be bit-identical");
    }

    /// <summary>
    /// A run saved before epoch records held a list of scores (test_loss, swa_test_loss, ... as
    /// columns) resumes with its history whole: the resumed run's metrics equal an uninterrupted run's.
    /// </summary>
    [Test]
    public void ARunSavedWithScoreColumnsResumesWithItsWholeHistory()
    {
        string straight = Path.Combine(_root, "straight"), old = Path.Combine(_root, "old");
        var a = CliRunner.Run([.. Tiny, "--out", straight]);
        Assert.That(a.ExitCode, Is.EqualTo(0), a.All);
        var b = CliRunner.Run([.. Tiny, "--out", old, "--halt-after-batches", "12"]);
        Assert.That(b.ExitCode, Is.EqualTo(130), b.All);
        var states = Directory.GetFiles(old, "state.json", SearchOption.AllDirectories);
        foreach (var path in states) WriteWithScoreColumns(path);
        Assert.That(File.ReadAllText(Path.Combine(old, "state.json")), Does.Contain("swa_test_loss").And.Not.Contain("scores"), "the old format");
        var c = CliRunner.Run("train", "--resume", old);
        Assert.That(c.ExitCode, Is.EqualTo(0), c.All);
        Assert.That(File.ReadAllLines(Path.Combine(old, "metrics.csv")).Select(StripTimes),
            Is.EqualTo(File.ReadAllLines(Path.Combine(straight, "metrics.csv")).Select(StripTimes)), "every epoch's scores, the two saved before the resume included");
        Assert.That(File.ReadAllBytes(Path.Combine(old, "swa.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(straight, "swa.safetensors"))));
    }

    /// <summary>Rewrites a state.json's epoch records as earlier versions wrote them: one column per model and metric.</summary>
    private static void WriteWithScoreColumns(string path)
    {
        var state = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        foreach (var record in state["history"]!.AsArray().Select(r => r!.AsObject()))
        {
            foreach (var score in record["scores"]!.AsArray())
            {
                string prefix = score!["model"]!.GetValue<string>() switch { "Trained" => "", "Average" => "swa_", "Ensemble" => "ensemble_", var m => throw new InvalidDataException(m) };
                foreach (var (column, key) in new[] { ("test_loss", "loss"), ("test_accuracy", "accuracy"), ("test_ece", "ece"), ("test_brier", "brier") })
                    record[prefix + column] = score[key]!.DeepClone();
            }
            record.Remove("scores");
        }
        // Those versions had no file digests and no seal either.
        state.Remove("files");
        state.Remove(CudaSwa.Training.CheckpointIntegrity.StateHashField);
        File.WriteAllText(path, state.ToJsonString());
    }

    /// <summary>Drops the timing columns (train/bn/epoch seconds, images/s), which legitimately differ.</summary>
    private static string StripTimes(string line) => string.Join(",", line.Split(',').Take(12));

    [Test]
    public void ResumeRejectsChangedOptions()
    {
        string dir = Path.Combine(_root, "run");
        var b = CliRunner.Run([.. Tiny, "--out", dir, "--halt-after-batches", "3"]);
        Assert.That(b.ExitCode, Is.EqualTo(130), b.All);
        var r = CliRunner.Run("train", "--resume", dir, "--lr", "0.1");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("--lr").And.Contain("cannot be changed"));
    }

    [Test]
    public void RunFolderHoldsTheFilesAUserWants()
    {
        string dir = Path.Combine(_root, "files");
        var r = CliRunner.Run([.. Tiny, "--out", dir]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        foreach (var f in new[] { "metrics.csv", "summary.json", "curves.png", "train.log", "model.safetensors", "swa.safetensors", "state.json" })
            Assert.That(File.Exists(Path.Combine(dir, f)), Is.True, f);
        Assert.That(r.Output, Does.Contain("SGD").And.Contain("SWA").And.Contain("SYNTHETIC"));
        var png = File.ReadAllBytes(Path.Combine(dir, "curves.png"));
        Assert.That(png.Take(8), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), "a PNG");
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
        var methods = summary.GetProperty("results").EnumerateArray().Select(e => e.GetProperty("method").GetString()).ToList();
        Assert.That(methods, Is.EqualTo(new[] { "SGD", "SWA", "Ensemble" }));
        Assert.That(File.ReadAllLines(Path.Combine(dir, "metrics.csv")), Has.Length.EqualTo(4), "header + 3 epochs");
        Assert.That(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories), Is.Empty, "no temporary files left");
    }

    [Test]
    public void DivergenceStopsWithExitCode3AndKeepsTheLastGoodCheckpoint()
    {
        string dir = Path.Combine(_root, "nan");
        // Two good epochs at lr 0.05, then the SWA schedule's third epoch at swa-lr 5000 diverges.
        var r = CliRunner.Run("train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "300", "--synthetic-test", "100", "--batch", "64",
            "--epochs", "3", "--swa-start", "2", "--lr", "0.05", "--swa-lr", "5000", "--out", dir);
        Assert.That(r.ExitCode, Is.EqualTo(3), r.All);
        Assert.That(r.All, Does.Contain("NaN/Inf").And.Contain("lr"));
        Assert.That(File.Exists(Path.Combine(dir, "summary.json")), Is.True);
        Assert.That(File.ReadAllText(Path.Combine(dir, "summary.json")), Does.Contain("\"diverged\""));
        // The checkpoint kept is a good one (the second epoch's, committed before the divergence): every value finite.
        Assert.That(File.Exists(Path.Combine(dir, "model.safetensors")), Is.True, "the last good checkpoint's model.safetensors is kept");
        foreach (var t in SafeTensors.Read(Path.Combine(dir, "model.safetensors")).Tensors.Values)
            Assert.That(t.Data.All(float.IsFinite), Is.True, $"{t.Name} in the kept checkpoint");
    }

    [Test]
    public void SafetensorsRoundTripAndFollowTheFormat()
    {
        var rng = new Fresh();
        string path = Path.Combine(_root, "t.safetensors");
        Directory.CreateDirectory(_root);
        var a = rng.Floats(6 * 5);
        var b = rng.Floats(7);
        SafeTensors.Write(path, [new SafeTensors.Entry("layer.weight", [6, 5], a), new SafeTensors.Entry("layer.bias", [7], b)],
            new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.That(n % 8, Is.Zero, "header padded to 8 bytes");
        var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n)).RootElement;
        var w = header.GetProperty("layer.weight");
        Assert.That(w.GetProperty("dtype").GetString(), Is.EqualTo("F32"));
        Assert.That(w.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(new[] { 6, 5 }));
        var offs = w.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        Assert.That(offs[1] - offs[0], Is.EqualTo(120));
        var raw = new float[30];
        Buffer.BlockCopy(bytes, 8 + (int)n + (int)offs[0], raw, 0, 120);
        Assert.That(raw, Is.EqualTo(a), "raw little-endian data at the stated offsets");
        Assert.That(bytes.Length, Is.EqualTo(8 + (int)n + 120 + 28));
        Assert.That(header.GetProperty("__metadata__").GetProperty("format").GetString(), Is.EqualTo("pt"));

        var back = SafeTensors.Read(path);
        Assert.That(back.Tensors["layer.weight"].Data, Is.EqualTo(a));
        Assert.That(back.Tensors["layer.bias"].Data, Is.EqualTo(b));
        Assert.That(back.Metadata["format"], Is.EqualTo("pt"));
    }

    [Test]
    public void MalformedHeaderEntriesAreNamedAndIntegerStepCountersSkipped()
    {
        Directory.CreateDirectory(_root);
        string path = Path.Combine(_root, "h.safetensors");
        void WriteRaw(string json, int dataBytes)
        {
            var head = System.Text.Encoding.UTF8.GetBytes(json);
            var bytes = new byte[8 + head.Length + dataBytes];
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)head.Length);
            head.CopyTo(bytes, 8);
            File.WriteAllBytes(path, bytes);
        }
        WriteRaw("{\"w\": {\"shape\": [2]}}", 8);
        var ex = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain("h.safetensors").And.Contain("'w'"));
        WriteRaw("{\"w\": [1, 2]}", 8);
        Assert.That(Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path))!.Message, Does.Contain("'w'"));
        // PyTorch's BN step counter is I64: skipped, the F32 tensors read.
        WriteRaw("{\"bn.num_batches_tracked\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]}, " +
                 "\"bn.weight\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16);
        var back = SafeTensors.Read(path);
        Assert.That(back.Tensors.Keys, Is.EqualTo(new[] { "bn.weight" }));
    }

    [Test]
    public void CorruptSafetensorsAreRejectedWithTheFileName()
    {
        Directory.CreateDirectory(_root);
        string path = Path.Combine(_root, "bad.safetensors");
        File.WriteAllBytes(path, [200, 0, 0, 0, 0, 0, 0, 0, (byte)'{']);
        var ex = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.That(ex!.Message, Does.Contain("bad.safetensors").And.Contain("header length"));
    }
}
