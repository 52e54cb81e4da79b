using System.CommandLine;
using CudaSwa.Cli.Options;
using CudaSwa.Training;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa train`'s options: the run's settings (<see cref="SettingsTable"/>) over a preset, the command's own options, and the rules of a resume.</summary>
internal static class TrainOptions
{
    internal static readonly Option<string?> Preset = new("--preset")
    {
        HelpName = "NAME",
        Description = "Start from a named configuration (other options override it; default quick):" + string.Concat(Presets.All.Select(p => $"\n  {p.Name}: {p.Description}")),
    };
    internal static readonly Option<string?> Out = new("--out") { Description = "Run folder for checkpoints, metrics.csv, summary.json, curves.png, train.log (default runs/<preset>-<time>)." };
    internal static readonly Option<string?> Resume = new("--resume") { Description = "Continue the run saved in this folder, bit for bit." };
    internal static readonly Option<bool> Profile = new("--profile")
    {
        Description = "Time every backend op (synchronising the device around each: slower, for diagnosis); the per-op table goes to profile.txt after each epoch and to the console at the end.",
    };
    internal static readonly Option<int?> HaltAfterBatches = new("--halt-after-batches") { Description = "Testing aid: behave as if Ctrl-C came after N batches.", Hidden = true };

    /// <summary>Every option of `cudaswa train`, in the order --help lists them.</summary>
    internal static Option[] All => [Preset, .. SettingsTable.All.SelectMany(s => s.Options), Out, Resume, Profile, HaltAfterBatches];

    /// <summary>Preset defaults, then every option the user gave.</summary>
    internal static RunSettings BuildOptions(ParseResult p)
    {
        bool sgdOnly = SettingsTable.SgdOnly.Get(p) || SettingsTable.SwapPhase2.Get(p) is not null;
        var dataset = SettingsTable.Dataset.Get(p, DatasetKind.Cifar10);
        var preset = Presets.Find(p.GetValue(Preset) ?? "quick");
        var o = preset.Create(dataset, sgdOnly);
        if (preset.NeedsRealData && SettingsTable.Data.Get(p) is null)
            throw new OptionException($"--preset {preset.Name} reproduces a paper experiment and needs real data: pass --data. {DataSources.CifarHint(dataset)}");
        o = SettingsTable.ApplyGiven(o, p);
        if (o.Training.SgdOnly && SettingsTable.SwaStart.Get(p) is null) o = o with { Training = o.Training with { SwaStart = null } };
        o.Validate();
        return o;
    }

    /// <summary>
    /// The saved run's settings with the allowed changes (those <see cref="Setting.ResumeMayChange"/> marks).
    /// Other options may be repeated with their saved values (so the original command line plus
    /// --resume works); a different value is an error naming the option, the saved and the given value.
    /// </summary>
    internal static RunSettings ResumeOptions(ParseResult p, RunSettings saved, string resume)
    {
        if (p.GetValue(Preset) is string preset && !string.Equals(preset, saved.Preset, StringComparison.OrdinalIgnoreCase))
            throw new OptionException($"--preset {preset}: the run in {resume} was started {(saved.Preset is null ? "without a preset" : $"with --preset {saved.Preset}")}; a resumed run keeps its options.");
        var given = SettingsTable.ApplyGiven(saved, p);
        if (given.DataDir is not null && saved.DataDir is not null && Path.GetFullPath(given.DataDir) == Path.GetFullPath(saved.DataDir))
            given = given with { DataDir = saved.DataDir };
        var changed = new List<string>();
        void Compare(System.Text.Json.Nodes.JsonObject was, System.Text.Json.Nodes.JsonObject now)
        {
            foreach (var name in was.Select(kv => kv.Key).Union(now.Select(kv => kv.Key)))
            {
                if (SettingsTable.ResumeMayChange.Contains(name)) continue;
                string before = was[name]?.ToJsonString() ?? "null", after = now[name]?.ToJsonString() ?? "null";
                if (before != after) changed.Add($"{SettingsTable.FlagOfSavedName.GetValueOrDefault(name, name)} (saved {before}, given {after})");
            }
        }
        Compare(saved.Training.ToJson(), given.Training.ToJson());
        Compare(saved.ToJson(), given.ToJson());
        if (changed.Count > 0)
        {
            var changeable = SettingsTable.All.Where(s => s.ResumeMayChange).Select(s => s.Flag).ToList();
            throw new OptionException($"--resume continues the run in {resume} with the options saved in its {Checkpoint.StateFile}; " +
                $"{string.Join(", ", changed.Distinct())} cannot be changed (only {string.Join(", ", changeable.SkipLast(1))} and {changeable[^1]} can).");
        }
        given.Validate();
        return given;
    }
}
