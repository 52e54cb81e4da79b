using Spectre.Console;
using System.CommandLine;
using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Training;

namespace CudaSwa.Cli.Commands;

/// <summary>
/// `cudaswa verify RUN_DIR`: checks a run folder without changing it — state.json's seal, every
/// checkpoint generation's files against the hashes its state records, and the content hash of
/// every safetensors output — and says what is intact, what is damaged (by file), and where a
/// resume would continue. Run folders inside it (an experiment's members, other ranks') are
/// checked too. Exit 0 when everything is intact, 2 when anything is damaged.
/// </summary>
public static class VerifyCommand
{
    public static Command Create(CliEnvironment env)
    {
        var dir = new Argument<string>("RUN_DIR") { Description = "The run folder (or an experiment folder) to check." };
        var cmd = new Command("verify", "Check a run folder's checkpoints and outputs against their recorded content hashes, without changing anything; " +
                                        "exit 0 when all is intact, 2 naming each damaged file.");
        cmd.Arguments.Add(dir);
        cmd.SetAction(p =>
        {
            string root = p.GetValue(dir)!;
            if (!Directory.Exists(root)) throw new OptionException($"RUN_DIR: '{root}' is not a folder.");
            var folders = new[] { root }.Concat(Directory.EnumerateFiles(root, Checkpoint.StateFile, SearchOption.AllDirectories)
                    .Select(f => Path.GetDirectoryName(f)!)
                    .Where(d => !Path.GetFullPath(d).Equals(Path.GetFullPath(root), StringComparison.Ordinal) && !IsInsideCheckpoints(root, d)))
                .Distinct().ToList();
            int damaged = 0, runs = 0;
            foreach (var folder in folders)
            {
                bool run = File.Exists(Path.Combine(folder, Checkpoint.StateFile));
                bool manifest = File.Exists(Path.Combine(folder, Output.ContentManifest.FileName));
                if (!run && !manifest && folder == root && folders.Count == 1)
                    throw new OptionException($"RUN_DIR: '{root}' holds no {Checkpoint.StateFile}: not a cudaswa run folder (nor one with runs inside).");
                if (run) { runs++; damaged += VerifyRun(folder, env.Console); }
                else if (manifest) env.Console.WriteLine(folder);
                damaged += VerifyManifest(folder, env.Console);
            }
            env.Console.WriteLine(damaged == 0
                ? $"intact: {Output.Wording.Count(runs, "run folder")} checked, nothing damaged"
                : $"DAMAGED: {Output.Wording.Count(damaged, "problem")} in {Output.Wording.Count(runs, "run folder")} (see above)");
            return damaged == 0 ? ExitCodes.Ok : ExitCodes.BadInput;
        });
        return cmd;
    }

    /// <summary>The outputs listed in the folder's checksums.xxh128 (a landscape's, an experiment's); returns the number damaged.</summary>
    private static int VerifyManifest(string dir, IAnsiConsole c)
    {
        int damaged = 0;
        foreach (var (file, problem) in Output.ContentManifest.Check(dir))
        {
            if (problem is null) c.WriteLine($"  ok       {file}: content hash matches ({Output.ContentManifest.FileName})");
            else { damaged++; c.MarkupLine($"  [red]DAMAGED[/]  {Markup.Escape($"{file}: {problem}")}"); }
        }
        return damaged;
    }

    /// <summary>Whether <paramref name="dir"/> is a checkpoint generation (a folder under some run's checkpoints/ below <paramref name="root"/>), not a run folder.</summary>
    private static bool IsInsideCheckpoints(string root, string dir) =>
        Path.GetRelativePath(root, dir).Replace('\\', '/').Split('/').Contains("checkpoints");

    /// <summary>Checks one run folder, printing a line per item; returns the number of damaged items.</summary>
    private static int VerifyRun(string runDir, IAnsiConsole c)
    {
        int damaged = 0;
        void Ok(string what) => c.WriteLine($"  ok       {what}");
        void Bad(string what) { damaged++; c.MarkupLine($"  [red]DAMAGED[/]  {Markup.Escape(what)}"); }
        c.WriteLine(runDir);

        TrainingState? state = null;
        string statePath = Path.Combine(runDir, Checkpoint.StateFile);
        try
        {
            bool sealedState = CheckpointIntegrity.CheckSeal(File.ReadAllText(statePath), statePath);
            state = CheckpointIntegrity.ReadState(statePath);
            Ok($"{Checkpoint.StateFile}{(sealedState ? " (sealed)" : " (written before states were sealed: not checkable)")}: epoch {state.NextEpoch}, batch {state.NextBatch}");
        }
        catch (DataFormatException e) { Bad($"{Checkpoint.StateFile}: {e.Message}"); }

        string checkpoints = Path.Combine(runDir, "checkpoints");
        if (Directory.Exists(checkpoints))
            foreach (var folder in Directory.GetDirectories(checkpoints).Order(StringComparer.Ordinal))
            {
                string name = Path.GetRelativePath(runDir, folder);
                string leaf = Path.GetFileName(folder);
                if (leaf.StartsWith('.')) continue; // a save that never committed: not a generation
                if (leaf.StartsWith(Checkpoint.DamagedPrefix, StringComparison.Ordinal)) { c.WriteLine($"  kept     {name} (set aside as damaged by an earlier resume)"); continue; }
                string role = state?.CheckpointFolder == name ? "current" : state?.PreviousCheckpointFolder == name ? "previous" : "other";
                try
                {
                    var own = CheckpointIntegrity.ReadState(Path.Combine(folder, Checkpoint.StateFile));
                    var problems = CheckpointIntegrity.Problems(folder, own);
                    if (problems.Count == 0) Ok($"{name} ({role}): {Output.Wording.Count(own.Files?.Count ?? 0, "file")} as written");
                    else foreach (var problem in problems) Bad($"{name} ({role}): {problem}");
                }
                catch (Exception e) when (e is DataFormatException or FileNotFoundException) { Bad($"{name} ({role}): {e.Message}"); }
            }

        var outputs = new[] { Checkpoint.ModelFile, Checkpoint.SwaFile, Checkpoint.SwagFile }.Select(f => Path.Combine(runDir, f))
            .Concat(Directory.Exists(Path.Combine(runDir, Checkpoint.EpochWeightsFolder))
                ? Directory.GetFiles(Path.Combine(runDir, Checkpoint.EpochWeightsFolder), "*.safetensors").Order(StringComparer.Ordinal) : [])
            .Where(File.Exists);
        foreach (var file in outputs)
        {
            string name = Path.GetRelativePath(runDir, file);
            try
            {
                var contents = SafeTensors.Read(file);
                Ok(contents.Metadata.ContainsKey(SafeTensors.ContentHashKey) ? $"{name}: content hash matches" : $"{name}: no content hash recorded (not checkable)");
            }
            catch (InvalidDataException e) { Bad($"{name}: {e.Message}"); }
        }
        return damaged;
    }
}
