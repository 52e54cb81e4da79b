using CudaSwa.Data;
using CudaSwa.Tensors;
using CudaSwa.Training;

namespace CudaSwa.Experiments;

/// <summary>
/// Runs an <see cref="ExperimentPlan"/> in one folder: every member an ordinary run folder
/// (checkpointed after every epoch, resumable bit for bit), members already complete are skipped,
/// interrupted ones resumed; returns the table. The members are independent (their own seeds), so
/// a plan can also be split over machines and the folders gathered with <see cref="Collect"/>.
/// </summary>
public static class Experiment
{
    /// <summary>
    /// Runs or finishes every member of <paramref name="plan"/> under <paramref name="outDir"/> on
    /// <paramref name="backend"/>; <paramref name="events"/> gives each member's trainer its progress
    /// handlers (null: none). Stops between epochs when <paramref name="cancel"/> fires
    /// (the member's position is saved) and returns the table of what exists.
    /// </summary>
    public static ExperimentTable Run(ExperimentPlan plan, Backend backend, ImageDataset train, ImageDataset test, string outDir,
        Func<ExperimentMember, TrainerEvents?>? events = null, CancellationToken cancel = default) =>
        RunForNetwork(plan, null, backend, train, test, outDir, events, cancel);

    /// <summary>
    /// <see cref="Run(ExperimentPlan, Backend, ImageDataset, ImageDataset, string, Func{ExperimentMember, TrainerEvents}?, CancellationToken)"/>
    /// for a network of the caller's own (see <see cref="Trainer.ForNetwork"/>); null uses the model zoo.
    /// </summary>
    public static ExperimentTable RunForNetwork(ExperimentPlan plan, Func<int, Layers.NetworkBuilder>? describeModel, Backend backend, ImageDataset train, ImageDataset test,
        string outDir, Func<ExperimentMember, TrainerEvents?>? events = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(outDir);
        Directory.CreateDirectory(outDir);
        foreach (var member in plan.Members)
        {
            if (cancel.IsCancellationRequested) break;
            string dir = Path.Combine(outDir, member.Folder);
            TrainingState? state = File.Exists(Path.Combine(dir, Checkpoint.StateFile)) ? Checkpoint.ReadState(dir) : null;
            if (state is not null && state.NextEpoch >= member.Options.Epochs) continue;
            var handlers = events?.Invoke(member);
            using var trainer = describeModel is null
                ? new Trainer(member.Options, backend, train, test, dir, handlers)
                : Trainer.ForNetwork(member.Options, describeModel, backend, train, test, dir, handlers);
            if (state is not null) trainer.Resume(dir, state);
            if (trainer.Run(cancel) == RunOutcome.Interrupted) break;
        }
        return Collect(plan, [outDir]);
    }

    /// <summary>
    /// The table from member folders found in <paramref name="folders"/> (each an experiment folder
    /// holding seed-&lt;seed&gt;-&lt;kind&gt; run folders, e.g. parts of one plan run on different machines).
    /// A member found in two folders must have the same history in both.
    /// </summary>
    public static ExperimentTable Collect(ExperimentPlan plan, IReadOnlyList<string> folders)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(folders);
        var states = new Dictionary<(ulong Seed, string Kind), TrainingState>();
        foreach (var member in plan.Members)
            foreach (var folder in folders)
            {
                string dir = Path.Combine(folder, member.Folder);
                if (!File.Exists(Path.Combine(dir, Checkpoint.StateFile))) continue;
                var state = Checkpoint.ReadState(dir);
                if (!string.Equals(state.Options.Model, member.Options.Model, StringComparison.OrdinalIgnoreCase) || state.Options.Seed != member.Seed)
                    throw new DataFormatException($"'{dir}' trains {state.Options.Model} with seed {state.Options.Seed}; the plan's member {member.Folder} is {member.Options.Model} with seed {member.Seed}.");
                if (states.TryGetValue((member.Seed, member.Kind), out var other))
                {
                    var a = other.History.Select(r => (r.Epoch, r.Trained?.Accuracy, r.Average?.Accuracy));
                    var b = state.History.Select(r => (r.Epoch, r.Trained?.Accuracy, r.Average?.Accuracy));
                    var shorter = other.History.Count <= state.History.Count ? a : b;
                    var longer = other.History.Count <= state.History.Count ? b : a;
                    if (!shorter.SequenceEqual(longer.Take(shorter.Count())))
                        throw new DataFormatException($"Member {member.Folder} appears in two folders with different results (one is '{dir}'): they are not the same run.");
                    if (state.History.Count <= other.History.Count) continue;
                }
                states[(member.Seed, member.Kind)] = state;
            }
        return ExperimentTable.Aggregate(plan, states);
    }
}
