using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CudaSwa.IO;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// `cudaswa eval --bn-recompute` of a run's swa.safetensors repeats the run's own BN recompute
/// (mode, batches, padding, seed, epoch key recorded in the file), so it prints the run's SWA row.
/// </summary>
public class EvalReproductionTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("eval-repro");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    [Test]
    public void EvalWithBnRecomputeReproducesTheRunsSwaRow()
    {
        string data = Path.Combine(_root, "data"), run = Path.Combine(_root, "run");
        Assert.That(CliRunner.Run("synth", "--out", data, "--train", "300", "--test", "100").ExitCode, Is.Zero);
        // Reflect padding, batches of 64 and seed 7: none of them eval's defaults, so each must come from the file.
        var t = CliRunner.Run("train", "--device", "cpu", "--model", "resnet8", "--data", data, "--batch", "64", "--epochs", "3", "--swa-start", "2",
            "--lr", "0.05", "--swa-lr", "0.02", "--seed", "7", "--padding", "reflect", "--out", run);
        Assert.That(t.ExitCode, Is.Zero, t.All);
        var swa = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "summary.json"))).RootElement.GetProperty("results")
            .EnumerateArray().Single(r => r.GetProperty("method").GetString() == "SWA");
        string rowLoss = swa.GetProperty("test_loss").GetDouble().ToString("F4", CultureInfo.InvariantCulture);
        string rowAccuracy = (100 * swa.GetProperty("test_accuracy").GetDouble()).ToString("F2", CultureInfo.InvariantCulture);

        string weights = Path.Combine(run, "swa.safetensors");
        var e = Eval(weights, data, model: null); // the weights name their model: no --model needed
        Assert.That(e.Output, Does.Contain("as the run did (Exact, batch 64, reflect padding, seed 7, epoch key 2)"));
        Assert.That(e.Loss, Is.EqualTo(rowLoss), "eval's NLL is the run's SWA row's");
        Assert.That(e.Accuracy, Is.EqualTo(rowAccuracy), "eval's accuracy is the run's SWA row's");

        // The same weights without the record get the default pass, which is another recompute:
        // the row above is reproduced by the record, not by chance.
        var contents = SafeTensors.Read(weights);
        string bare = Path.Combine(_root, "bare.safetensors");
        SafeTensors.Write(bare, contents.Tensors.Values, contents.Metadata.Where(kv => !kv.Key.StartsWith("bn_recompute_", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value));
        var d = Eval(bare, data);
        Assert.That(d.Output, Does.Contain("the weights record no recompute of their own"));
        Assert.That(d.Loss, Is.Not.EqualTo(rowLoss), "a recompute with other batches gives other statistics");

        // A damaged record is refused, naming the key (asked for with the flag's earlier, hidden spelling).
        string damaged = Path.Combine(_root, "damaged.safetensors");
        var meta = contents.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        meta["bn_recompute_epoch_key"] = "two";
        SafeTensors.Write(damaged, contents.Tensors.Values, meta);
        var r = CliRunner.Run("eval", "--weights", damaged, "--model", "resnet8", "--data", data, "--batch", "64", "--device", "cpu", "--recompute-bn");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("bn_recompute_epoch_key").And.Contain("'two'"));

        // A --model other than the one the file records is refused, naming both.
        var wrong = CliRunner.Run("eval", "--weights", weights, "--model", "resnet20", "--data", data, "--device", "cpu");
        Assert.That(wrong.ExitCode, Is.EqualTo(2), wrong.All);
        Assert.That(wrong.Error, Does.Contain("--model resnet20").And.Contain("resnet8"));
        // A file that names no model (as PyTorch writes them) needs --model.
        string anonymous = Path.Combine(_root, "anonymous.safetensors");
        SafeTensors.Write(anonymous, contents.Tensors.Values, new Dictionary<string, string> { ["format"] = "pt" });
        var none = CliRunner.Run("eval", "--weights", anonymous, "--data", data, "--device", "cpu");
        Assert.That(none.ExitCode, Is.EqualTo(2), none.All);
        Assert.That(none.Error, Does.Contain("--model"));
    }

    private static (string Output, string Loss, string Accuracy) Eval(string weights, string data, string? model = "resnet8")
    {
        string[] modelArgs = model is null ? [] : ["--model", model];
        var r = CliRunner.Run(["eval", "--weights", weights, .. modelArgs, "--data", data, "--batch", "64", "--device", "cpu", "--bn-recompute"]);
        Assert.That(r.ExitCode, Is.Zero, r.All);
        var m = Regex.Match(r.Output, @"test accuracy (\d+\.\d\d)% .*test loss \(NLL\) (\d+\.\d{4})");
        Assert.That(m.Success, Is.True, r.Output);
        return (r.Output, m.Groups[2].Value, m.Groups[1].Value);
    }
}
