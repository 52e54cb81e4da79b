using CudaSwa.Data;
using CudaSwa.Distributed;
using CudaSwa.Tensors;

namespace CudaSwa.Training.Parallel;

/// <summary>
/// The protocol of a data-parallel run (mpiexec -n N): which exchange the ranks use, where each
/// rank keeps its checkpoints, how a resume agrees on one position, and the part of every rank
/// other than 0, which trains in step without writing the run's outputs. Rank 0 runs its
/// <see cref="Trainer"/> itself (it reports and writes) and calls the same steps in the same order:
/// <see cref="AgreeOnResume"/> (SWAP runs), <see cref="Trainer.Resume"/>, a barrier,
/// <see cref="CheckSamePosition"/>, then <see cref="Trainer.DistributeOver"/>.
/// </summary>
public static class DataParallelRun
{
    /// <summary>The checkpoint folder of rank <paramref name="rank"/> &gt; 0 of a SWAP run (its phase-2 model is its own).</summary>
    public static string RankFolder(string outDir, int rank) => Path.Combine(outDir, "ranks", $"rank-{rank}");

    /// <summary>
    /// The exchange the ranks train over, decided together so no rank waits in an exchange another
    /// never enters: NCCL (GPU to GPU, on the backend's stream) when every rank trains on CUDA and
    /// has NCCL, else null and the launcher's MPI carries the sums; <paramref name="ncclMissing"/>
    /// then says why, when the ranks are on GPUs. Throws <see cref="Devices.DeviceUnavailableException"/>
    /// when some ranks opened a GPU and others the CPU.
    /// </summary>
    public static NcclCollective? OpenExchange(Collective launcher, Backend backend, out string? ncclMissing)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        ArgumentNullException.ThrowIfNull(backend);
        ncclMissing = null;
        bool cuda = backend is Cuda.CudaBackend;
        if (launcher.Any(cuda) && launcher.Any(!cuda))
            throw new Devices.DeviceUnavailableException("Some ranks opened a GPU and others the CPU (a GPU missing or failing on some machine); all ranks must train on the same kind of device.",
                "mixed devices");
        if (!cuda || launcher.Size == 1) return null;
        bool everyRankHasNccl = !launcher.Any(!NcclCollective.IsAvailable(out ncclMissing));
        if (!everyRankHasNccl)
        {
            ncclMissing ??= "NCCL is missing on another rank's machine.";
            return null;
        }
        return NcclCollective.Open(launcher, backend);
    }

    /// <summary>
    /// Called by every rank of a resumed run, collectively, before any rank resumes. In a SWAP run
    /// the ranks keep checkpoints of their own and a stop between two ranks' saves leaves them a
    /// save apart: they agree on the latest position all of them hold (a rank ahead goes back to
    /// its previous checkpoint). Returns the state of rank 0's folder to resume from and a note for
    /// the user when a rank went back (null otherwise); other runs get <paramref name="state"/> back.
    /// </summary>
    public static (TrainingState State, string? Note) AgreeOnResume(string outDir, TrainingState state, Collective collective)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(collective);
        return state.Options.SwapPhase2 is not null && collective.Size > 1 ? SwapCheckpoints.Agree(outDir, state, collective) : (state, null);
    }

    /// <summary>
    /// The ranks' resumed positions must agree before any rank decides on its own (e.g. "complete,
    /// nothing to do"): a crash between two ranks' checkpoint saves is an error here, not a hang.
    /// </summary>
    public static void CheckSamePosition(Trainer trainer, Collective collective)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(collective);
        if (collective.Size > 1) collective.CheckSame(trainer.State.GlobalStep, "The position each rank resumed from (global step)");
    }

    /// <summary>
    /// The part of a rank other than 0: the same trainer as rank 0's without a run folder (rank 0
    /// writes everything), resumed from rank 0's checkpoint once rank 0 has tidied the folder,
    /// trained in step with the others. In a SWAP run the rank keeps checkpoints of its own under
    /// <see cref="RankFolder"/> (phase 2 trains a model per rank) and resumes from them.
    /// <paramref name="state"/> is rank 0's saved state when resuming, else null.
    /// </summary>
    public static RunOutcome Follow(TrainingOptions options, Backend backend, ImageDataset train, ImageDataset test, string outDir, TrainingState? state,
        Collective collective, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(collective);
        if (collective.IsRoot) throw new ArgumentException("Rank 0 runs its own trainer and writes the run; Follow is for the other ranks.", nameof(collective));
        string? own = options.SwapPhase2 is null ? null : RankFolder(outDir, collective.Rank);
        if (own is not null) Directory.CreateDirectory(own);
        using var trainer = new Trainer(options, backend, train, test, own);
        if (state is not null) (state, _) = AgreeOnResume(outDir, state, collective);
        collective.Barrier();
        if (state is not null)
        {
            // Inside SWAP's phase 2 this rank's model is its own; before it, rank 0's checkpoint is exactly every rank's.
            if (!state.StoppedInSwapPhase2) trainer.Resume(outDir, state);
            else if (File.Exists(Path.Combine(own!, Checkpoint.StateFile))) trainer.Resume(own!, Checkpoint.ReadState(own!));
            else throw new DataFormatException($"{own} holds no checkpoint of rank {collective.Rank}, and the SWAP run stopped in phase 2, where each rank's model is its own: it cannot continue.");
        }
        CheckSamePosition(trainer, collective);
        if (trainer.IsComplete) return RunOutcome.Completed;
        trainer.DistributeOver(collective);
        return trainer.Run(cancel);
    }
}
