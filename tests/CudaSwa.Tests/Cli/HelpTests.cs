using System.Text.RegularExpressions;
using CudaSwa.Averaging;
using CudaSwa.Cli;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// `train --help` shows each training setting's default, taken from the engine's options (the
/// quick preset, which `train` runs without --preset), so a default is never restated in the CLI.
/// </summary>
public class HelpTests
{
    [Test]
    public void TrainHelpShowsTheDefaultsTheEngineDeclares()
    {
        var r = CliRunner.Run("train", "--help");
        Assert.That(r.ExitCode, Is.Zero, r.All);
        string help = Regex.Replace(r.Output, @"\s+", " "); // help wraps descriptions over several lines
        var quick = Presets.Find("quick").Create(DatasetKind.Cifar10, false).Training;
        var expected = new (string Flag, string Value)[]
        {
            ("--swag-rank <K>", SwagMoments.DefaultRank.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("--lawa-k <K>", AveragingOptions.DefaultLawaK.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("--lr", quick.Lr.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            ("--epochs <N>", quick.Epochs.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("--model <NAME>", quick.Model),
            ("--average <swa|ema|swag|lawa>", "swa"),
            ("--bn-recompute <exact|sample-weighted|equal-batches|none>", "exact"),
            ("--padding <zero|reflect>", "zero"), // kept as a number in the JSON: shown by its name
        };
        foreach (var (flag, value) in expected)
            Assert.That(help, Does.Match(Regex.Escape(flag) + @" [^\[]*\[default: " + Regex.Escape(value) + @"\]"), $"{flag} shows its default {value}");
        Assert.That(help, Does.Not.Match(@"--nesterov [^\[-]*\[default"), "a switch has no default to show");
        Assert.That(help, Does.Contain("defaults shown are the quick preset's"));
        foreach (var preset in Presets.All)
            Assert.That(r.Output, Does.Match(@"\n\s+" + Regex.Escape(preset.Name) + ":"), $"--preset lists {preset.Name} on a line of its own");
    }
}
