using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CudaSwa.Cli.Output;
using CudaSwa.Data;
using CudaSwa.Experiments;
using CudaSwa.IO;
using CudaSwa.Training;
using Spectre.Console;
using CudaSwa.Util;

using CudaSwa.Cli.Options;

namespace CudaSwa.Cli.Commands;

/// <summary>
/// `cudaswa experiment`: the SWA paper's table (Izmailov et al. 2018, Table 1) as one resumable
/// command — per seed an SGD run with the budget and one SWA run to the largest budget, evaluated
/// at each budget; every member an ordinary `train` run folder under the experiment folder. Writes
/// table.md, table.csv, experiment.json and experiment.png and prints the table (beside the paper's
/// published numbers when the run is at full scale on real CIFAR data).
/// </summary>
public static class ExperimentCommand
{
    private static readonly Option<string> Preset = new("--preset") { Description = "quick (scaled, synthetic), paper-vgg16, paper-preresnet110, paper-preresnet164 or paper-wrn28x10.", DefaultValueFactory = _ => "quick" };
    private static readonly Option<int> Seeds = new("--seeds") { Description = "Runs per cell, each with its own seed.", DefaultValueFactory = _ => 3 };
    private static readonly Option<ulong> FirstSeed = new("--first-seed") { Description = "Seeds are first-seed, first-seed+1, ... (to split seeds over machines, then --collect).", DefaultValueFactory = _ => 1 };
    private static readonly Option<string> Budgets = new("--budgets") { Description = "SWA budgets as multiples of the SGD budget.", DefaultValueFactory = _ => "1,1.25,1.5" };
    private static readonly Option<double?> Scale = new("--scale") { Description = "Shrink the preset's epochs (budget and averaging start) by this factor in (0, 1], for a quick version of the grid." };
    private static readonly Option<string?> Out = new("--out") { Description = "Experiment folder (default runs/experiment-<preset>-<time>); with --collect, where the gathered table goes." };
    private static readonly Option<string?> Resume = new("--resume") { Description = "Finish the experiment in this folder: complete members are kept, interrupted ones resumed, missing ones run." };
    private static readonly Option<string[]> Collect = new("--collect") { Description = "Gather the members of these experiment folders (same plan, e.g. seeds run on different machines) into one table in --out.", AllowMultipleArgumentsPerToken = true };
    private static readonly Option<int?> Member = new("--member") { Description = "With --resume DIR: train only member K (from 0; seed by seed, SGD then SWA), e.g. one task of a job array. Inside a Slurm job array, SLURM_ARRAY_TASK_ID is used when --member is not given." };
    private static readonly Option<bool> SlurmScript = new("--slurm-script") { Description = "Create the experiment folder (or use --resume DIR) and write experiment.slurm: a Slurm job array with one task per member; train nothing now." };

    /// <summary>The job-array index variable of Slurm (one task per member).</summary>
    public const string SlurmArrayIndex = "SLURM_ARRAY_TASK_ID";
    /// <summary>The job-array script written by --slurm-script.</summary>
    public const string SlurmFile = "experiment.slurm";

    public const string PlanFile = "experiment.json";

    /// <summary>The quick experiment: resnet8 on 4,000 synthetic images, budget 8 epochs, averaging after epoch 6 (like the paper's ~0.8 of the budget).</summary>
    private const int QuickBudget = 8, QuickSwaStart = 6, QuickTrain = 4000, QuickTest = 1000;

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("experiment", "The SWA paper's table: SGD vs SWA at 1, 1.25 and 1.5 budgets over several seeds (mean ± std), resumable.");
        foreach (var o in new Option[] { Preset, SettingsTable.Data.Option, SettingsTable.Dataset.Option, Seeds, FirstSeed, Budgets, Scale, SettingsTable.SyntheticTrain.Option, SettingsTable.SyntheticTest.Option, SettingsTable.TrainSubset.Option, Out, Resume, Collect, SettingsTable.Device.Option, Member, SlurmScript }) cmd.Options.Add(o);
        cmd.SetAction(p => Execute(p, env));
        return cmd;
    }

    /// <summary>What experiment.json keeps: the plan and the settings every member shares.</summary>
    private sealed record Definition(string Preset, double Scale, bool Synthetic, DatasetKind Dataset, RunSettings Settings, ExperimentPlan Plan);

    private static int Execute(ParseResult p, CliEnvironment env)
    {
        if (Distributed.Collective.LaunchedAsRanks(env.Variables))
            throw new OptionException("cudaswa experiment trains its members one after another in one process, not as ranks of one job: " +
                "run it without mpiexec, or give each member its own task (--slurm-script, --member K).");
        if (p.GetValue(Collect) is { Length: > 0 } folders) return Gather(folders, p.GetValue(Out), env);
        bool script = p.GetValue(SlurmScript);
        var (only, onlySource) = MemberIndex(p, env);
        if (only is not null && p.GetValue(Resume) is null)
            throw new OptionException($"{onlySource} needs --resume DIR: members run inside an experiment folder made first (e.g. by `cudaswa experiment ... --out DIR --slurm-script`).");
        if (only is not null && script) throw new OptionException("--slurm-script writes the job array for all members; do not combine it with --member.");
        Definition def;
        string outDir;
        if (p.GetValue(Resume) is string resume)
        {
            def = ReadDefinition(resume);
            outDir = resume;
        }
        else
        {
            def = Define(p);
            outDir = p.GetValue(Out) ?? Path.Combine("runs", $"experiment-{def.Preset}-{DateTime.Now:yyyyMMdd-HHmmss}");
            if (File.Exists(Path.Combine(outDir, PlanFile)))
                throw new OptionException($"--out {outDir} already holds an experiment; finish it with --resume {outDir} or choose another --out.");
            if (script) CheckSlurmPath(outDir);
            if (File.Exists(outDir)) throw new OptionException($"--out {outDir} is a file, not a folder.");
            // Load the data once before writing anything: a bad data folder is an error, not a half-made experiment.
            DataSources.Load(MemberSettings(def, def.Plan.Members.First()), env: env);
            Directory.CreateDirectory(outDir);
            AtomicFile.WriteAllText(Path.Combine(outDir, PlanFile), Serialize(def, null).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        var console = env.Console;
        var plan = def.Plan;
        var members = plan.Members.ToList();
        if (script) return WriteSlurmScript(outDir, def, env);
        if (only is int k) return RunMember(outDir, def, k, onlySource!, env);
        console.WriteLine($"cudaswa experiment: {def.Preset}, {plan.Sgd.Model}, budget {plan.BudgetEpochs} epochs, SWA run to epoch {plan.Swa.Epochs} averaging from the end of epoch {plan.Swa.SwaStart}, " +
            $"budgets {string.Join(", ", plan.Budgets.Select(b => b.ToString("0.###", CultureInfo.InvariantCulture)))} (epochs {string.Join(", ", plan.Budgets.Select(plan.EpochOf))}), " +
            $"seeds {string.Join(", ", plan.Seeds)}: {members.Count} runs in {outDir}");
        if (def.Synthetic || def.Scale != 1)
            console.WriteLine($"This is a SCALED{(def.Synthetic ? ", SYNTHETIC" : "")} experiment ({Describe(def)}): it shows the procedure and the shape of the table, not the paper's numbers.");
        var diverged = new List<string>();
        for (int i = 0; i < members.Count; i++)
        {
            var member = members[i];
            string dir = Path.Combine(outDir, member.Folder);
            TrainingState? state = File.Exists(Path.Combine(dir, Checkpoint.StateFile)) ? Checkpoint.ReadIntactState(dir, note => env.Console.WriteLine(note)) : null;
            if (state is not null && state.NextEpoch >= member.Options.Epochs)
            {
                console.WriteLine($"[{i + 1}/{members.Count}] {member.Folder}: complete");
                continue;
            }
            console.WriteLine($"[{i + 1}/{members.Count}] {member.Folder}: {(state is null ? "training" : $"resuming at epoch {state.NextEpoch + 1}")} ({member.Options.Epochs} epochs)");
            int code = TrainCommand.Train(MemberSettings(def, member), state, dir, env);
            if (code == ExitCodes.Interrupted)
            {
                console.WriteLine($"Stopped. Finish the experiment with: cudaswa experiment --resume {outDir}");
                return code;
            }
            if (code == ExitCodes.Diverged) diverged.Add(member.Folder);
            else if (code != ExitCodes.Ok) return code;
        }
        var table = Experiment.Collect(plan, [outDir]);
        WriteOutputs(outDir, def, table, [outDir], env);
        if (diverged.Count > 0) console.WriteLine($"Diverged (no values in the table): {string.Join(", ", diverged)}.");
        return ExitCodes.Ok;
    }

    // ------------------------------------------------------------------ one member (a job-array task)

    /// <summary>The member to run alone: --member, else the Slurm array index when present (null: every member), and where it came from.</summary>
    private static (int? Index, string? Source) MemberIndex(ParseResult p, CliEnvironment env)
    {
        if (p.GetValue(Member) is int k) return (k, "--member");
        if (p.GetValue(Resume) is null || p.GetValue(SlurmScript)) return (null, null);
        string? text = env.Variables(SlurmArrayIndex);
        if (string.IsNullOrWhiteSpace(text)) return (null, null);
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            throw new OptionException($"{SlurmArrayIndex}='{text}' is not a job-array index; expected a whole number (or pass --member K).");
        return (index, SlurmArrayIndex);
    }

    /// <summary>
    /// Trains (or finishes) member <paramref name="index"/> alone. Tasks of a job array run side by
    /// side in one folder, each in its own member folder; the task that finds every member complete
    /// writes the table (outputs are written atomically, so two last tasks at once are harmless).
    /// </summary>
    private static int RunMember(string outDir, Definition def, int index, string source, CliEnvironment env)
    {
        var members = def.Plan.Members.ToList();
        if (index < 0 || index >= members.Count)
            throw new OptionException($"{source}: member {index} does not exist; the experiment in {outDir} has members 0..{members.Count - 1} ({Wording.Count(def.Plan.Seeds.Count, "seed")} x SGD and SWA).");
        var console = env.Console;
        var member = members[index];
        string dir = Path.Combine(outDir, member.Folder);
        TrainingState? state = File.Exists(Path.Combine(dir, Checkpoint.StateFile)) ? Checkpoint.ReadIntactState(dir, note => env.Console.WriteLine(note)) : null;
        string from = source == SlurmArrayIndex ? $" (from {SlurmArrayIndex})" : "";
        if (state is not null && state.NextEpoch >= member.Options.Epochs)
            console.WriteLine($"member {index}{from}: {member.Folder} is complete");
        else
        {
            console.WriteLine($"member {index}{from} of {members.Count}: {member.Folder}: {(state is null ? "training" : $"resuming at epoch {state.NextEpoch + 1}")} ({member.Options.Epochs} epochs) in {outDir}");
            int code = TrainCommand.Train(MemberSettings(def, member), state, dir, env);
            if (code == ExitCodes.Interrupted)
            {
                console.WriteLine($"Stopped. Continue this member with: cudaswa experiment --resume {outDir} --member {index}");
                return code;
            }
            if (code == ExitCodes.Diverged) console.WriteLine($"member {index} ({member.Folder}) diverged: it has no values in the table.");
            else if (code != ExitCodes.Ok) return code;
        }
        int finished = members.Count(m => IsFinished(outDir, m));
        if (finished < members.Count)
        {
            console.WriteLine($"{finished} of {members.Count} members complete. When all are, the last one writes the table (or run: cudaswa experiment --collect {outDir} --out {outDir}).");
            return ExitCodes.Ok;
        }
        console.WriteLine($"All {members.Count} members complete: writing the table.");
        WriteOutputs(outDir, def, Experiment.Collect(def.Plan, [outDir]), [outDir], env);
        return ExitCodes.Ok;
    }

    /// <summary>Whether the member has finished: trained to its last epoch, or stopped for good because it diverged (its summary.json says so).</summary>
    private static bool IsFinished(string outDir, ExperimentMember member)
    {
        string dir = Path.Combine(outDir, member.Folder);
        if (File.Exists(Path.Combine(dir, Checkpoint.StateFile)) && Checkpoint.ReadState(dir).NextEpoch >= member.Options.Epochs) return true;
        string summary = Path.Combine(dir, RunFiles.SummaryFile);
        try
        {
            return File.Exists(summary) && JsonNode.Parse(File.ReadAllText(summary))?["outcome"]?.GetValue<string>() == "diverged";
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// Writes experiment.slurm into the experiment folder: a job array with one task per member,
    /// each running `cudaswa experiment --resume DIR` (the task's index picks its member). A task
    /// stopped by its time limit saves a checkpoint (SIGTERM two minutes before); a requeued task,
    /// or the array submitted again, resumes its member.
    /// </summary>
    private static int WriteSlurmScript(string outDir, Definition def, CliEnvironment env)
    {
        var members = def.Plan.Members.ToList();
        string dir = Path.GetFullPath(outDir);
        bool gpu = def.Settings.Device.StartsWith("cuda", StringComparison.Ordinal);
        CheckSlurmPath(dir);
        var sb = new StringBuilder();
        sb.Append("#!/bin/bash\n");
        sb.Append($"# cudaswa experiment {def.Preset}: {members.Count} members ({string.Join(", ", members.Select((m, i) => $"{i} = {m.Folder}"))}).\n");
        sb.Append("# Submit with: sbatch " + Quote(Path.Combine(dir, SlurmFile)) + "\n");
        sb.Append("# Each task trains one member in its own folder and resumes it if the task was interrupted or requeued;\n");
        sb.Append($"# the last task to finish writes the table (or run: cudaswa experiment --collect {Quote(dir)} --out {Quote(dir)}).\n");
        sb.Append($"#SBATCH --job-name=cudaswa-{def.Preset}\n");
        sb.Append($"#SBATCH --array=0-{members.Count - 1}\n");
        sb.Append($"#SBATCH --output={dir}/slurm-%A_%a.out\n");
        sb.Append("#SBATCH --ntasks=1\n");
        sb.Append(gpu ? "#SBATCH --gres=gpu:1\n" : "##SBATCH --gres=gpu:1            (uncomment to train each member on a GPU)\n");
        sb.Append("#SBATCH --requeue\n");
        sb.Append("#SBATCH --signal=B:TERM@120\n");
        sb.Append("##SBATCH --time=24:00:00       (set your cluster's limits here: time, partition, account, CPUs)\n");
        sb.Append("set -euo pipefail\n");
        sb.Append($"exec {CommandLine()} experiment --resume {Quote(dir)} --member \"$SLURM_ARRAY_TASK_ID\"\n");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, SlurmFile);
        AtomicFile.WriteAllText(path, sb.ToString());
        env.Console.WriteLine($"Wrote {path} ({members.Count} array tasks, one per member). Submit it with: sbatch {Quote(path)}");
        if (!gpu)
            env.Console.WriteLine($"The tasks ask for no GPU (--device {def.Settings.Device}): to train each member on a GPU, uncomment the --gres line (and use --device cuda or auto).");
        return ExitCodes.Ok;
    }

    /// <summary>Slurm's #SBATCH lines take no quotes: a folder with spaces or '%' cannot be named there.</summary>
    private static void CheckSlurmPath(string dir)
    {
        if (Path.GetFullPath(dir).IndexOfAny([' ', '%']) >= 0)
            throw new OptionException($"--out {dir}: Slurm's #SBATCH lines cannot name a folder with spaces or '%'; choose another folder for the experiment.");
    }

    /// <summary>How this program is started: its own executable, or `dotnet cudaswa.dll`.</summary>
    private static string CommandLine()
    {
        string? process = Environment.ProcessPath;
        if (process is not null && Path.GetFileNameWithoutExtension(process) == "cudaswa") return Quote(process);
        string dotnet = process is not null && Path.GetFileNameWithoutExtension(process) == "dotnet" ? process : "dotnet";
        return $"{Quote(dotnet)} {Quote(typeof(ExperimentCommand).Assembly.Location)}";
    }

    /// <summary>A path as one shell word.</summary>
    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    /// <summary>The experiment the options describe, checked before anything is written.</summary>
    private static Definition Define(ParseResult p)
    {
        string presetName = p.GetValue(Preset)!.Trim().ToLowerInvariant();
        var preset = Presets.Find(presetName);
        var kind = SettingsTable.Dataset.Get(p, DatasetKind.Cifar10);
        string? data = SettingsTable.Data.Get(p);
        if (preset.NeedsRealData && data is null)
            throw new OptionException($"--preset {preset.Name} reproduces the paper on CIFAR: it needs --data. {DataSources.CifarHint(kind)}");
        int seeds = p.GetValue(Seeds);
        if (seeds < 1 || seeds > 100) throw new OptionException($"--seeds: must be in 1..100; got {seeds}.");
        double scale = p.GetValue(Scale) ?? 1;
        if (!(scale > 0 && scale <= 1)) throw new OptionException($"--scale: must be in (0, 1]; got {scale.ToString(CultureInfo.InvariantCulture)}.");
        var budgets = ParseBudgets(p.GetValue(Budgets)!);
        var sgdSettings = preset.Create(kind, true);
        var swaSettings = preset.Create(kind, false);
        var sgd = sgdSettings.Training;
        var swa = swaSettings.Training;
        bool quick = preset.Name == "quick";
        int budget = Math.Max(2, (int)Math.Round(scale * (quick ? QuickBudget : sgd.Epochs), MidpointRounding.AwayFromZero));
        int start = Math.Max(1, (int)Math.Round(scale * (quick ? QuickSwaStart : swa.SwaStart!.Value), MidpointRounding.AwayFromZero));
        var settings = sgdSettings with
        {
            DataDir = data,
            Device = (SettingsTable.Device.Get(p) ?? "auto").Trim().ToLowerInvariant(),
            TrainSubset = SettingsTable.TrainSubset.Get(p),
            SyntheticTrain = SettingsTable.SyntheticTrain.Get(p) ?? (quick ? QuickTrain : sgdSettings.SyntheticTrain),
            SyntheticTest = SettingsTable.SyntheticTest.Get(p) ?? (quick ? QuickTest : sgdSettings.SyntheticTest),
        };
        // The budget epochs are evaluated by EvaluateAt; elsewhere every epoch (quick) or every 5th (paper), as `train` does.
        sgd = sgd with { Epochs = budget, Ensemble = false };
        swa = swa with { SwaStart = start, Ensemble = false };
        ExperimentPlan plan;
        try
        {
            plan = ExperimentPlan.Create(sgd, swa, budgets, [.. Enumerable.Range(0, seeds).Select(i => p.GetValue(FirstSeed) + (ulong)i)]);
        }
        catch (ArgumentException e)
        {
            throw new OptionException($"--budgets / --scale: {e.Message}");
        }
        var def = new Definition(preset.Name, scale, data is null, kind, settings, plan);
        MemberSettings(def, plan.Members.First()).Validate();
        return def;
    }

    private static double[] ParseBudgets(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var result = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out result[i]) || !(result[i] > 0) || !double.IsFinite(result[i]))
                throw new OptionException($"--budgets: '{parts[i]}' is not a positive number; expected a comma-separated list such as 1,1.25,1.5.");
        if (result.Length == 0) throw new OptionException("--budgets: no budgets given; expected a comma-separated list such as 1,1.25,1.5.");
        return result;
    }

    private static RunSettings MemberSettings(Definition def, ExperimentMember member) =>
        def.Settings with { Preset = def.Preset, Dataset = def.Dataset, Training = member.Options };

    private static string Describe(Definition def) =>
        (def.Synthetic ? $"{def.Settings.SyntheticTrain:N0} synthetic training images" : $"{def.Dataset} from {def.Settings.DataDir}") +
        (def.Settings.TrainSubset is int n ? $", a {n:N0}-image subset" : "") +
        $", budget {Wording.Count(def.Plan.BudgetEpochs, "epoch")}" + (def.Scale != 1 ? $" ({def.Scale.ToString(CultureInfo.InvariantCulture)} of the paper's)" : "");

    // ------------------------------------------------------------------ experiment.json

    private static JsonObject Serialize(Definition def, ExperimentTable? table)
    {
        var o = new JsonObject
        {
            ["preset"] = def.Preset,
            ["scale"] = def.Scale,
            ["synthetic"] = def.Synthetic,
            ["dataset"] = def.Dataset.ToString().ToLowerInvariant(),
            ["budgets"] = new JsonArray([.. def.Plan.Budgets.Select(b => (JsonNode)b)]),
            ["seeds"] = new JsonArray([.. def.Plan.Seeds.Select(s => (JsonNode)s)]),
            ["settings"] = def.Settings.ToJson(),
            ["sgd"] = def.Plan.Sgd.ToJson(),
            ["swa"] = def.Plan.Swa.ToJson(),
        };
        if (table is not null)
        {
            var columns = new JsonArray();
            for (int c = 0; c < table.Columns.Count; c++)
            {
                var cell = table.Cells[c];
                columns.Add(new JsonObject
                {
                    ["column"] = table.Columns[c],
                    ["epoch"] = table.ColumnEpochs[c],
                    ["mean_error_percent"] = cell.MeanError,
                    ["std_error_percent"] = cell.StdError,
                    ["mean_nll"] = cell.MeanNll,
                    ["std_nll"] = cell.StdNll,
                    ["members"] = new JsonArray([.. table.Seeds.Select((s, i) => (JsonNode)new JsonObject
                    {
                        ["seed"] = s,
                        ["folder"] = (c == 0 ? new ExperimentMember(s, ExperimentPlan.SgdKind, def.Plan.Sgd) : new ExperimentMember(s, ExperimentPlan.SwaKind, def.Plan.Swa)).Folder,
                        ["error_percent"] = cell.Errors[i],
                        ["nll"] = cell.Nlls[i],
                    })]),
                });
            }
            o["table"] = columns;
        }
        return o;
    }

    private static Definition ReadDefinition(string dir)
    {
        string path = Path.Combine(dir, PlanFile);
        if (!File.Exists(path)) throw new OptionException($"'{dir}' holds no {PlanFile}: it is not a cudaswa experiment folder.");
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var sgd = TrainingOptions.FromJson(o["sgd"]!);
            var swa = TrainingOptions.FromJson(o["swa"]!);
            var budgets = o["budgets"]!.AsArray().Select(b => b!.GetValue<double>()).ToArray();
            var seeds = o["seeds"]!.AsArray().Select(s => s!.GetValue<ulong>()).ToArray();
            var plan = ExperimentPlan.Create(sgd, swa with { EvaluateAt = null }, budgets, seeds);
            var settings = o["settings"].Deserialize(CliJsonContext.Default.RunSettings)!;
            var kind = o["dataset"]!.GetValue<string>() == "cifar100" ? DatasetKind.Cifar100 : DatasetKind.Cifar10;
            return new Definition(o["preset"]!.GetValue<string>(), o["scale"]!.GetValue<double>(), o["synthetic"]!.GetValue<bool>(), kind, settings, plan);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException or NullReferenceException or FormatException or DataFormatException)
        {
            throw new DataFormatException($"'{path}' is not a valid experiment definition: {e.Message}");
        }
    }

    // ------------------------------------------------------------------ --collect

    private static int Gather(string[] folders, string? outDir, CliEnvironment env)
    {
        if (outDir is null) throw new OptionException("--collect needs --out DIR: the folder the gathered table goes to.");
        var defs = folders.Select(ReadDefinition).ToList();
        var first = defs[0];
        string Key(Definition d) => (d.Plan.Sgd with { Seed = 0 }).ToJson().ToJsonString() +
                                    (d.Plan.Swa with { Seed = 0 }).ToJson().ToJsonString() +
                                    string.Join(",", d.Plan.Budgets) + d.Preset + d.Dataset + d.Scale;
        for (int i = 1; i < defs.Count; i++)
            if (Key(defs[i]) != Key(first))
                throw new OptionException($"--collect: '{folders[i]}' holds another experiment than '{folders[0]}' (model, options, budgets or scale differ); only parts of one plan can be gathered.");
        var seeds = defs.SelectMany(d => d.Plan.Seeds).Distinct().OrderBy(s => s).ToArray();
        var def = first with { Plan = first.Plan with { Seeds = seeds } };
        if (File.Exists(Path.Combine(outDir, PlanFile)) && !folders.Any(f => Path.GetFullPath(f) == Path.GetFullPath(outDir)))
            throw new OptionException($"--out {outDir} already holds an experiment; gather into a new folder (or one of the collected ones).");
        var table = Experiment.Collect(def.Plan, folders);
        Directory.CreateDirectory(outDir);
        WriteOutputs(outDir, def, table, folders, env);
        return ExitCodes.Ok;
    }

    // ------------------------------------------------------------------ outputs

    private static void WriteOutputs(string outDir, Definition def, ExperimentTable table, IReadOnlyList<string> folders, CliEnvironment env)
    {
        AtomicFile.WriteAllText(Path.Combine(outDir, PlanFile), Serialize(def, table).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var paper = def.Synthetic || def.Scale != 1 ? null : PaperResults.Find(def.Preset, def.Dataset, def.Plan.Budgets);
        string label = $"{table.Model} / {(def.Synthetic ? "synthetic" : def.Dataset.ToString())}" + (def.Scale != 1 ? $" (x{def.Scale.ToString(CultureInfo.InvariantCulture)} epochs)" : "");
        var md = new StringBuilder();
        md.AppendLine($"Test error (%) and NLL, mean ± std over seeds {string.Join(", ", table.Seeds)} ({Describe(def)}).");
        md.AppendLine();
        md.AppendLine("| model / data | " + string.Join(" | ", table.Columns.Select((c, i) => $"{c} (epoch {table.ColumnEpochs[i]})")) + " |");
        md.AppendLine("|---|" + string.Concat(table.Columns.Select(_ => "---:|")));
        md.AppendLine($"| {label}: test error % | " + string.Join(" | ", table.Cells.Select(c => Cell(c.MeanError, c.StdError, "F2", c.Count, table.Seeds.Count))) + " |");
        md.AppendLine($"| {label}: NLL | " + string.Join(" | ", table.Cells.Select(c => Cell(c.MeanNll, c.StdNll, "F4", c.Count, table.Seeds.Count))) + " |");
        if (paper is not null)
            md.AppendLine($"| paper (Izmailov et al. 2018): test error % | " + string.Join(" | ", paper.Select(x => $"{100 - x.Accuracy:F2} ± {x.Std:F2}")) + " |");
        AtomicFile.WriteAllText(Path.Combine(outDir, "table.md"), md.ToString());

        var csv = new StringBuilder("model,data,column,epoch,mean_error_percent,std_error_percent,mean_nll,std_nll,seeds_with_values,errors_percent\n");
        for (int c = 0; c < table.Columns.Count; c++)
        {
            var cell = table.Cells[c];
            csv.AppendLine(string.Join(",", table.Model, def.Synthetic ? "synthetic" : def.Dataset.ToString().ToLowerInvariant(), table.Columns[c],
                table.ColumnEpochs[c].ToString(CultureInfo.InvariantCulture), RunFiles.Csv(cell.MeanError), RunFiles.Csv(cell.StdError), RunFiles.Csv(cell.MeanNll),
                RunFiles.Csv(cell.StdNll), cell.Count.ToString(CultureInfo.InvariantCulture), string.Join(";", cell.Errors.Select(RunFiles.Csv))));
        }
        AtomicFile.WriteAllText(Path.Combine(outDir, "table.csv"), csv.ToString());
        ExperimentPlot.Write(Path.Combine(outDir, "experiment.png"), def.Plan, folders, label);
        ContentManifest.Record(outDir, PlanFile, "table.md", "table.csv", "experiment.png");

        var console = env.Console;
        var t = new Table().Title($"[bold]{Markup.Escape(label)}: test error % (NLL), mean ± std over {Wording.Count(table.Seeds.Count, "seed")}[/]").AddColumn("");
        for (int c = 0; c < table.Columns.Count; c++) t.AddColumn(new TableColumn($"{table.Columns[c]}\n(epoch {table.ColumnEpochs[c]})").RightAligned());
        t.AddRow(["ours", .. table.Cells.Select(c => Markup.Escape(Cell(c.MeanError, c.StdError, "F2", c.Count, table.Seeds.Count) + $"\n({Cell(c.MeanNll, c.StdNll, "F3", c.Count, table.Seeds.Count)})"))]);
        if (paper is not null) t.AddRow(["paper", .. paper.Select(x => Markup.Escape($"{100 - x.Accuracy:F2} ± {x.Std:F2}"))]);
        console.Write(t);
        console.WriteLine($"table.md, table.csv, {PlanFile} and experiment.png are in {outDir}");
    }

    private static string Cell(double? mean, double? std, string format, int count, int seeds) =>
        mean is null ? "-" : mean.Value.ToString(format, CultureInfo.InvariantCulture) + (std is double s ? " ± " + s.ToString(format, CultureInfo.InvariantCulture) : "") +
        (count < seeds ? $" ({count} of {Wording.Count(seeds, "seed")})" : "");
}

/// <summary>The SWA paper's published test accuracies (%, mean ± std of 3 runs; Izmailov et al. 2018, Table 1, and its reference code's README).</summary>
public static class PaperResults
{
    private static readonly Dictionary<(string, DatasetKind), (double Accuracy, double Std)[]> Table = new()
    {
        [("paper-vgg16", DatasetKind.Cifar100)] = [(72.55, 0.10), (73.91, 0.12), (74.17, 0.15), (74.27, 0.25)],
        [("paper-preresnet110", DatasetKind.Cifar100)] = [(76.77, 0.38), (78.75, 0.16), (78.91, 0.29), (79.10, 0.21)],
        [("paper-preresnet164", DatasetKind.Cifar100)] = [(78.49, 0.36), (79.77, 0.17), (80.18, 0.23), (80.35, 0.16)],
        [("paper-wrn28x10", DatasetKind.Cifar100)] = [(80.82, 0.23), (81.46, 0.23), (81.91, 0.27), (82.15, 0.27)],
        [("paper-vgg16", DatasetKind.Cifar10)] = [(93.25, 0.16), (93.59, 0.16), (93.70, 0.22), (93.64, 0.18)],
        [("paper-preresnet110", DatasetKind.Cifar10)] = [(95.03, 0.05), (95.51, 0.10), (95.65, 0.03), (95.82, 0.03)],
        [("paper-preresnet164", DatasetKind.Cifar10)] = [(95.28, 0.10), (95.56, 0.11), (95.77, 0.04), (95.83, 0.03)],
        [("paper-wrn28x10", DatasetKind.Cifar10)] = [(96.18, 0.11), (96.45, 0.11), (96.64, 0.08), (96.79, 0.05)],
    };

    /// <summary>SGD then SWA at 1, 1.25 and 1.5 budgets for a paper preset; null for other presets or other budgets.</summary>
    public static IReadOnlyList<(double Accuracy, double Std)>? Find(string preset, DatasetKind dataset, IReadOnlyList<double> budgets) =>
        budgets.SequenceEqual([1, 1.25, 1.5]) && Table.TryGetValue((preset, dataset), out var row) ? row : null;
}
