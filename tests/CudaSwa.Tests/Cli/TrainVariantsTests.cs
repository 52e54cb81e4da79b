using System.Text.Json;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>Every schedule and averaging variant runs end to end through `cudaswa train`, and `cudaswa eval` reads what train wrote.</summary>
public class TrainVariantsTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("variants");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private static readonly string[] Tiny =
        ["train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "50", "--batch", "50", "--epochs", "3", "--swa-start", "2"];

    [Test]
    public void ProfileWritesTheTimeOfEveryOpAndPrintsIt()
    {
        string outDir = Path.Combine(_root, "profiled");
        var r = CliRunner.Run([.. Tiny, "--profile", "--out", outDir]);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        string profile = File.ReadAllText(Path.Combine(outDir, "profile.txt"));
        // Every op a training epoch, an evaluation (batch norms folded into their convolutions) and a
        // BN recompute use, with a share and a call count.
        foreach (string op in new[] { "ConvolutionForward", "ConvolutionBackwardFilter", "BatchNormReluForwardTraining", "BatchNormReluBackward", "FoldBatchNorm", "ConvolutionBiasActivationForward", "SgdStep", "AverageUpdate", "total" })
            Assert.That(profile, Does.Contain(op), profile);
        var conv = profile.Split('\n').First(l => l.StartsWith("ConvolutionForward", StringComparison.Ordinal));
        Assert.That(conv, Does.Match(@"ConvolutionForward\s+[0-9.]+ ms\s+[0-9.]+%\s+[1-9][0-9]* calls"));
        Assert.That(r.All, Does.Contain("where the time went").And.Contain("ConvolutionBackwardData"));
    }

    /// <summary>The tensors of a weights file, by name.</summary>
    private static Dictionary<string, float[]> Weights(string dir, string file) =>
        CudaSwa.IO.SafeTensors.Read(Path.Combine(dir, file)).Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Data);

    private static bool Same(Dictionary<string, float[]> a, Dictionary<string, float[]> b, Func<string, bool> which) =>
        a.Keys.Where(which).All(k => a[k].AsSpan().SequenceEqual(b[k]));

    private string Train(string name, params string[] extra)
    {
        string dir = Path.Combine(_root, name);
        var r = CliRunner.Run([.. Tiny, "--seed", "11", .. extra, "--out", dir]);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        return dir;
    }

    /// <summary>
    /// Each training option changes what it should and nothing else, bit for bit: --nesterov changes
    /// the SGD trajectory; --padding changes the trajectory (the
    /// crops' borders); --average-every-steps changes the average, not SGD; --ema-warmup changes the EMA, not SGD; --bn-recompute changes only
    /// the averaged model's BN statistics, not its weights or SGD. (An option ignored somewhere on its
    /// way would leave its run equal to the default one.)
    /// </summary>
    [Test]
    public void EachTrainingOptionChangesWhatItShouldAndNothingElse()
    {
        static bool IsStatistic(string name) => name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith("running_var", StringComparison.Ordinal);
        string baseline = Train("baseline");
        var sgd = Weights(baseline, "model.safetensors");
        var swa = Weights(baseline, "swa.safetensors");

        Assert.That(Same(Weights(Train("nesterov", "--nesterov"), "model.safetensors"), sgd, _ => true), Is.False, "--nesterov changes the SGD weights");

        Assert.That(Same(Weights(Train("reflect", "--padding", "reflect"), "model.safetensors"), sgd, _ => true), Is.False, "--padding reflect changes the SGD trajectory");

        string steps = Train("every-steps", "--average-every-steps", "2");
        Assert.That(Same(Weights(steps, "model.safetensors"), sgd, _ => true), Is.True, "--average-every-steps leaves SGD alone");
        Assert.That(Same(Weights(steps, "swa.safetensors"), swa, n => !IsStatistic(n)), Is.False, "--average-every-steps changes the average");

        string ema = Train("ema", "--average", "ema", "--ema-decay", "0.99"), warm = Train("ema-warmup", "--average", "ema", "--ema-decay", "0.99", "--ema-warmup");
        Assert.That(Same(Weights(warm, "model.safetensors"), Weights(ema, "model.safetensors"), _ => true), Is.True, "--ema-warmup leaves SGD alone");
        Assert.That(Same(Weights(warm, "swa.safetensors"), Weights(ema, "swa.safetensors"), n => !IsStatistic(n)), Is.False, "--ema-warmup changes the EMA");

        string weighted = Train("sample-weighted", "--bn-recompute", "sample-weighted");
        Assert.That(Same(Weights(weighted, "model.safetensors"), sgd, _ => true), Is.True, "--bn-recompute leaves SGD alone");
        Assert.That(Same(Weights(weighted, "swa.safetensors"), swa, n => !IsStatistic(n)), Is.True, "--bn-recompute leaves the averaged weights alone");
        Assert.That(Same(Weights(weighted, "swa.safetensors"), swa, IsStatistic), Is.False, "--bn-recompute changes the averaged model's BN statistics");
    }

    [TestCase("--schedule", "cyclic", "--cycle", "1", "--swa-lr", "0.05")]
    [TestCase("--schedule", "swalr", "--anneal-epochs", "1", "--anneal", "linear")]
    [TestCase("--schedule", "cosine")]
    [TestCase("--average", "ema", "--ema-decay", "0.9")]
    [TestCase("--average", "ema", "--ema-warmup")]
    [TestCase("--average", "lawa", "--lawa-k", "1")]
    [TestCase("--bn-update", "sample-weighted", "--padding", "reflect")] // the flag's earlier spelling still works
    [TestCase("--bn-recompute", "None", "--no-ensemble")]
    [TestCase("--average-every-steps", "2", "--nesterov")]
    [TestCase("--sgd-only", "--schedule", "swa")]
    public void VariantRunsAndReportsItsTable(params string[] extra)
    {
        string outDir = Path.Combine(_root, "run");
        var r = CliRunner.Run([.. Tiny, .. extra, "--out", outDir]);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        var rows = summary.GetProperty("results").EnumerateArray().ToList();
        Assert.That(rows[0].GetProperty("method").GetString(), Is.EqualTo("SGD"));
        bool sgdOnly = extra.Contains("--sgd-only");
        Assert.That(rows, Has.Count.EqualTo(sgdOnly ? 1 : extra.Contains("--no-ensemble") ? 2 : 3));
        foreach (var row in rows)
        {
            double acc = row.GetProperty("test_accuracy").GetDouble();
            Assert.That(acc, Is.InRange(0.0, 1.0), row.GetProperty("method").GetString());
        }
        if (!sgdOnly)
        {
            string method = extra.Contains("ema") ? "EMA" : extra.Contains("lawa") ? "LAWA" : "SWA";
            Assert.That(rows[1].GetProperty("method").GetString(), Is.EqualTo(method));
            Assert.That(File.Exists(Path.Combine(outDir, "swa.safetensors")), Is.True);
        }
        Assert.That(File.ReadAllLines(Path.Combine(outDir, "metrics.csv")), Has.Length.EqualTo(4));
        if (extra.Contains("None"))
        {
            // Without a recompute the averaged model carries averaged statistics, not reset ones.
            var meta = CudaSwa.IO.SafeTensors.Read(Path.Combine(outDir, "swa.safetensors")).Metadata;
            Assert.That(meta["bn_statistics"], Is.EqualTo("averaged with the weights"));
            Assert.That(rows[1].GetProperty("test_loss").GetDouble(), Is.LessThan(rows[0].GetProperty("test_loss").GetDouble() * 1.5), "SWA with averaged statistics is a usable model");
        }
        else if (!sgdOnly)
        {
            var meta = CudaSwa.IO.SafeTensors.Read(Path.Combine(outDir, "swa.safetensors")).Metadata;
            Assert.That(meta["bn_statistics"], Does.StartWith("recomputed"));
        }
    }

    [Test]
    public void EvalReadsTheWeightsTrainWrote()
    {
        string outDir = Path.Combine(_root, "run");
        var t = CliRunner.Run([.. Tiny, "--out", outDir]);
        Assert.That(t.ExitCode, Is.Zero, t.All);
        var e = CliRunner.Run("eval", "--weights", Path.Combine(outDir, "swa.safetensors"), "--model", "resnet8", "--device", "cpu", "--test-subset", "200", "--batch", "64");
        Assert.That(e.ExitCode, Is.Zero, e.All);
        Assert.That(e.Output, Does.Contain("test accuracy").And.Contain("on 200 images"));
        var wrongModel = CliRunner.Run("eval", "--weights", Path.Combine(outDir, "swa.safetensors"), "--model", "resnet20", "--device", "cpu", "--test-subset", "20");
        Assert.That(wrongModel.ExitCode, Is.EqualTo(2), wrongModel.All);
        Assert.That(wrongModel.Error, Does.Contain("holds resnet8 weights"), "the file's metadata names its model");
        // Without that metadata (a file PyTorch wrote) the tensors themselves give the mismatch away.
        var contents = CudaSwa.IO.SafeTensors.Read(Path.Combine(outDir, "swa.safetensors"));
        string anonymous = Path.Combine(_root, "anonymous.safetensors");
        CudaSwa.IO.SafeTensors.Write(anonymous, contents.Tensors.Values, new Dictionary<string, string> { ["format"] = "pt" });
        var wrongShapes = CliRunner.Run("eval", "--weights", anonymous, "--model", "resnet20", "--device", "cpu", "--test-subset", "20");
        Assert.That(wrongShapes.ExitCode, Is.EqualTo(2), wrongShapes.All);
        Assert.That(wrongShapes.Error, Does.Contain("lacks").Or.Contain("shape"));
        var oddBatch = CliRunner.Run("eval", "--weights", Path.Combine(outDir, "swa.safetensors"), "--model", "resnet8", "--device", "cpu", "--test-subset", "100", "--batch", "19");
        Assert.That(oddBatch.ExitCode, Is.Zero, "evaluation alone does not care how the training set splits into batches: " + oddBatch.All);
        var missing = CliRunner.Run("eval", "--weights", Path.Combine(outDir, "nope.safetensors"), "--model", "resnet8");
        Assert.That(missing.ExitCode, Is.EqualTo(2));
        Assert.That(missing.Error, Does.Contain("nope.safetensors").And.Contain("does not exist"));
    }

    [Test]
    public void AFinishedRunCanBeExtendedWithMoreEpochs()
    {
        string outDir = Path.Combine(_root, "run");
        Assert.That(CliRunner.Run([.. Tiny, "--out", outDir]).ExitCode, Is.Zero);
        // Resuming a complete run is always safe advice: nothing to do, exit 0.
        var again = CliRunner.Run("train", "--resume", outDir);
        Assert.That(again.ExitCode, Is.Zero, again.All);
        Assert.That(again.Output, Does.Contain("is complete (3 of 3 epochs): nothing left to train"));
        var shorter = CliRunner.Run("train", "--resume", outDir, "--epochs", "2");
        Assert.That(shorter.ExitCode, Is.EqualTo(2));
        Assert.That(shorter.Error, Does.Contain("--epochs 2").And.Contain("already trained 3 epochs").And.Contain("cannot be shortened"));
        var more = CliRunner.Run("train", "--resume", outDir, "--epochs", "4");
        Assert.That(more.ExitCode, Is.Zero, more.All);
        Assert.That(File.ReadAllLines(Path.Combine(outDir, "metrics.csv")), Has.Length.EqualTo(5));
    }
}
