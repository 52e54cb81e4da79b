using CudaSwa.Data;
using CudaSwa.Distributed;

namespace CudaSwa.Training.Parallel;

/// <summary>
/// The checkpoints of a SWAP run's ranks: rank 0's in the run folder, every other rank's in
/// ranks/rank-R (phase 2 trains a model per rank). The ranks save at the same steps but not at the
/// same instant, so a crash can leave one rank a save ahead of another; each keeps the checkpoint
/// before its last, and on resume the ranks agree on the latest position all of them hold.
/// </summary>
internal static class SwapCheckpoints
{
    /// <summary>
    /// Called by every rank of a resumed SWAP run (collectively, before any rank resumes):
    /// compares the ranks' last two positions, sends a rank that is a save ahead back to its
    /// previous checkpoint, and returns the state of rank 0's folder to resume from, with a note
    /// for the user when a rank went back (null otherwise). Throws, on every rank, when no
    /// position is held by all ranks.
    /// </summary>
    public static (TrainingState State, string? Note) Agree(string outDir, TrainingState state, Collective collective)
    {
        // Every rank read the same state.json of rank 0: all refuse another number of ranks alike, before any exchange.
        if ((state.NextEpoch > 0 || state.NextBatch > 0) && state.Ranks != collective.Size)
            throw new InvalidOperationException($"This run was trained on {state.Ranks} rank(s) and continues only on {state.Ranks} (here: {collective.Size}): " +
                "inside SWAP's phase 2 each rank's model is its own.");
        string own = collective.IsRoot ? outDir : DataParallelRun.RankFolder(outDir, collective.Rank);
        TrainingState? latest = collective.IsRoot ? state
            : File.Exists(Path.Combine(own, Checkpoint.StateFile)) ? Checkpoint.ReadState(own) : null;
        TrainingState? previous = latest is null ? null : Checkpoint.ReadPrevious(own, latest);

        // Per rank: last step, previous step (-1: none), and whether each is inside phase 2. Each
        // rank fills its own four slots, so the sum gathers them exactly.
        const int Slot = 4;
        var all = new double[Slot * collective.Size];
        var mine = all.AsSpan(Slot * collective.Rank, Slot);
        mine[0] = latest?.GlobalStep ?? -1;
        mine[1] = previous?.GlobalStep ?? -1;
        mine[2] = latest?.StoppedInSwapPhase2 == true ? 1 : 0;
        mine[3] = previous?.StoppedInSwapPhase2 == true ? 1 : 0;
        collective.AllReduceSumDouble(all);

        // Rank 0's last position if every rank can continue from it, else its previous one. Before
        // phase 2 every rank continues from rank 0's checkpoint; inside it each needs its own.
        long? chosen = null;
        for (int k = 0; k < 2 && chosen is null; k++)
        {
            double step = all[k];
            if (step < 0) continue;
            bool inPhase2 = all[2 + k] == 1;
            if (!inPhase2 || Enumerable.Range(1, collective.Size - 1).All(r => all[Slot * r] == step || all[Slot * r + 1] == step))
                chosen = (long)step;
        }
        if (chosen is null)
            throw new DataFormatException("The ranks' checkpoints of this SWAP run do not meet at any position inside phase 2, where each rank's model is its own: " +
                string.Join("; ", Enumerable.Range(0, collective.Size).Select(r => $"rank {r} holds {Steps(all[Slot * r], all[Slot * r + 1])}")) +
                ". It cannot continue.");

        string? note = null;
        if (collective.IsRoot && chosen != state.GlobalStep)
        {
            state = Checkpoint.RollBack(outDir, state);
            note = $"Another rank's last checkpoint is a save behind this folder's (a stop between the ranks' saves): the run goes back to global step {chosen} " +
                $"(epoch {state.NextEpoch + 1}, batch {state.NextBatch}), which every rank holds.";
        }
        collective.Barrier(); // rank 0's folder is final from here on
        var resumed = collective.IsRoot ? state : Checkpoint.ReadState(outDir);
        bool goBack = !collective.IsRoot && resumed.StoppedInSwapPhase2 && latest!.GlobalStep != chosen;
        if (goBack) Checkpoint.RollBack(own, latest!);
        if (collective.Any(goBack) && note is null)
            note = $"Another rank's last checkpoint was a save ahead of this folder's (a stop between the ranks' saves): it went back to global step {chosen}, which every rank holds.";
        return (resumed, note);
    }

    private static string Steps(double latest, double previous) =>
        latest < 0 ? "no checkpoint of its own" : previous < 0 ? $"step {latest} only" : $"steps {latest} and {previous}";
}
