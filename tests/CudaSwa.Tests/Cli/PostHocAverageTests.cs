using CudaSwa.IO;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// `train --save-epoch-weights` keeps each epoch's SGD weights, and `cudaswa average` of a run's
/// SWA-phase epoch weights gives the run's own SWA average (the same running mean, folded in the
/// same order by the same update), up to float rounding.
/// </summary>
public class PostHocAverageTests
{
    private string _root = "";

    [SetUp]
    public void MakeRoot() => _root = CliRunner.TempDir("post-hoc");

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private static readonly string[] Data = ["--synthetic-train", "200", "--synthetic-test", "50", "--batch", "50", "--device", "cpu"];

    private static bool IsStatistic(string name) => name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith("running_var", StringComparison.Ordinal);

    [Test]
    public void AverageOfTheSwaPhaseEpochWeightsIsTheRunsSwaAverage()
    {
        string run = Path.Combine(_root, "run");
        var t = CliRunner.Run(["train", .. Data, "--model", "resnet8", "--epochs", "4", "--swa-start", "2", "--seed", "5", "--save-epoch-weights", "--out", run]);
        Assert.That(t.ExitCode, Is.Zero, t.All);
        var epochs = Enumerable.Range(1, 4).Select(e => Checkpoint.EpochWeightsFile(run, e)).ToArray();
        foreach (var (file, e) in epochs.Select((f, i) => (f, i + 1)))
            Assert.That(SafeTensors.Read(file).Metadata["epoch"], Is.EqualTo(e.ToString(System.Globalization.CultureInfo.InvariantCulture)), file);
        // The last epoch's weights are the run's final SGD weights, bit for bit.
        var last = SafeTensors.Read(epochs[3]).Tensors;
        foreach (var (name, tensor) in SafeTensors.Read(Path.Combine(run, Checkpoint.ModelFile)).Tensors)
            Assert.That(last[name].Data, Is.EqualTo(tensor.Data), name);

        // SWA from epoch 2: the run averaged the weights after epochs 2, 3 and 4.
        string output = Path.Combine(_root, "average.safetensors");
        var a = CliRunner.Run(["average", "--weights", epochs[1], epochs[2], epochs[3], .. Data, "--out", output]);
        Assert.That(a.ExitCode, Is.Zero, a.All);
        Assert.That(a.Output, Does.Contain("average of 3: test accuracy").And.Contain("recomputed BN statistics over 200 training images"));
        var averaged = SafeTensors.Read(output);
        var swa = SafeTensors.Read(Path.Combine(run, Checkpoint.SwaFile)).Tensors;
        // Stated tolerance: float rounding of the running mean, |a - s| <= 1e-6 |s| + 1e-7 per value.
        double worst = 0;
        foreach (var (name, s) in swa.Where(kv => !IsStatistic(kv.Key)))
            for (int i = 0; i < s.Data.Length; i++)
            {
                double diff = Math.Abs(averaged.Tensors[name].Data[i] - s.Data[i]);
                worst = Math.Max(worst, diff);
                Assert.That(diff, Is.LessThanOrEqualTo(1e-6 * Math.Abs(s.Data[i]) + 1e-7), $"{name}[{i}]");
            }
        TestContext.Out.WriteLine($"post-hoc average vs the run's SWA average: largest difference {worst:E2}");
        Assert.That(averaged.Metadata["model"], Is.EqualTo("resnet8"));
        Assert.That(averaged.Metadata["sources"], Does.Contain("epoch-0002.safetensors").And.Contain("epoch-0004.safetensors"));
        Assert.That(averaged.Metadata["bn_recompute_mode"], Is.EqualTo("Exact"), "the recompute is recorded, so eval --bn-recompute can repeat it");

        // The comparison can fail: the average of all four epochs is another model.
        string all = Path.Combine(_root, "all.safetensors");
        Assert.That(CliRunner.Run(["average", "--weights", .. epochs, .. Data, "--out", all]).ExitCode, Is.Zero);
        var other = SafeTensors.Read(all).Tensors;
        double moved = swa.Where(kv => !IsStatistic(kv.Key)).Max(kv => kv.Value.Data.Select((v, i) => Math.Abs(other[kv.Key].Data[i] - v)).Max());
        Assert.That(moved, Is.GreaterThan(1e-3), "averaging epoch 1 too changes the average");

        // A file of another model is refused, naming it, before anything is written.
        var contents = SafeTensors.Read(epochs[1]);
        string foreign = Path.Combine(_root, "foreign.safetensors");
        SafeTensors.Write(foreign, contents.Tensors.Values, new Dictionary<string, string>(contents.Metadata) { ["model"] = "resnet20" });
        string refused = Path.Combine(_root, "refused.safetensors");
        var r = CliRunner.Run(["average", "--weights", epochs[1], foreign, .. Data, "--out", refused]);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain("foreign.safetensors").And.Contain("resnet20"));
        Assert.That(File.Exists(refused), Is.False);
    }

    [Test]
    public void AverageHelpListsItsOptions()
    {
        var r = CliRunner.Run("average", "--help");
        Assert.That(r.ExitCode, Is.Zero, r.All);
        Assert.That(r.Output, Does.Contain("--weights").And.Contain("--out").And.Contain("--bn-recompute").And.Contain("post-hoc SWA"));
        Assert.That(r.Output, Does.Not.Contain("--bn-update"), "the earlier spelling works but is not shown");
    }
}
