using CudaSwa.Cli;
using System.Text.Json;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>The paper presets carry the SWA paper's settings (Izmailov et al. 2018, Sec. 5.1 and its reference code).</summary>
public class PresetTests
{
    // preset, dataset, sgd-only -> model, lr, wd, epochs, swa start, swa lr
    [TestCase("paper-vgg16", DatasetKind.Cifar10, false, "vgg16", 0.05, 5e-4, 300, 161, 0.01)]
    [TestCase("paper-vgg16", DatasetKind.Cifar100, true, "vgg16", 0.05, 5e-4, 200, null, null)]
    [TestCase("paper-preresnet110", DatasetKind.Cifar100, false, "preresnet110", 0.1, 3e-4, 225, 126, 0.05)]
    [TestCase("paper-preresnet164", DatasetKind.Cifar10, false, "preresnet164", 0.1, 3e-4, 225, 126, 0.01)]
    [TestCase("paper-preresnet164", DatasetKind.Cifar100, true, "preresnet164", 0.1, 3e-4, 150, null, null)]
    [TestCase("paper-wrn28x10", DatasetKind.Cifar100, false, "wrn28x10", 0.1, 5e-4, 300, 161, 0.05)]
    [TestCase("paper-wrn28x10", DatasetKind.Cifar10, true, "wrn28x10", 0.1, 5e-4, 200, null, null)]
    public void PaperPresetsCarryThePapersSettings(string preset, DatasetKind dataset, bool sgdOnly, string model, double lr, double wd, int epochs, int? swaStart, double? swaLr)
    {
        var settings = Presets.Find(preset).Create(dataset, sgdOnly);
        var o = settings.Training;
        Assert.That(o.Model, Is.EqualTo(model));
        Assert.That(o.Lr, Is.EqualTo(lr));
        Assert.That(o.WeightDecay, Is.EqualTo(wd));
        Assert.That(o.Epochs, Is.EqualTo(epochs));
        Assert.That(o.SwaStart, Is.EqualTo(swaStart));
        Assert.That(o.SwaLr, Is.EqualTo(swaLr));
        Assert.That(o.BatchSize, Is.EqualTo(128));
        Assert.That(o.Momentum, Is.EqualTo(0.9));
        Assert.That(o.Schedule, Is.EqualTo(ScheduleKind.Swa));
        Assert.That(o.SgdOnly, Is.EqualTo(sgdOnly));
        Assert.That(settings.Preset, Is.EqualTo(preset));
        Assert.DoesNotThrow(() => (settings with { DataDir = "/somewhere" }).Validate());
    }

    [Test]
    public void APaperPresetRunsOnCifarFilesWithOverrides()
    {
        string root = CliRunner.TempDir("preset");
        try
        {
            string data = Path.Combine(root, "data");
            Assert.That(CliRunner.Run("synth", "--out", data, "--train", "300", "--test", "60").ExitCode, Is.Zero);
            string outDir = Path.Combine(root, "run");
            var r = CliRunner.Run("train", "--preset", "paper-preresnet164", "--data", data, "--model", "resnet8", "--epochs", "2", "--swa-start", "1",
                "--train-subset", "200", "--test-subset", "50", "--batch", "50", "--device", "cpu", "--out", outDir);
            Assert.That(r.ExitCode, Is.Zero, r.All);
            var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
            var options = summary.GetProperty("options");
            Assert.That(summary.GetProperty("settings").GetProperty("preset").GetString(), Is.EqualTo("paper-preresnet164"));
            Assert.That(options.GetProperty("weight_decay").GetDouble(), Is.EqualTo(3e-4), "the preset's value stays where no option overrides it");
            Assert.That(options.GetProperty("model").GetString(), Is.EqualTo("resnet8"), "an explicit option overrides the preset");
            Assert.That(r.Output, Does.Contain("Cifar10 from").And.Not.Contain("SYNTHETIC"));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }
}
