using Spectre.Console;
using System.CommandLine;
using CudaSwa.Averaging;
using CudaSwa.Cli.Options;
using CudaSwa.Cli.Output;
using CudaSwa.Data;
using CudaSwa.Optim;
using CudaSwa.IO;
using CudaSwa.Tensors;
using CudaSwa.Training;
using CudaSwa.Util;
using CudaSwa.Training.Parallel;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa train`: options checked before any file is written, then this process's part of the run (one process, or one rank of several).</summary>
public static class TrainCommand
{
    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("train", "Train a CIFAR model with SGD and Stochastic Weight Averaging; prints SGD vs SWA vs ensemble. " +
            "The defaults shown are the quick preset's (another --preset sets its own).");
        SettingsTable.ShowDefaults(Presets.Find("quick").Create(DatasetKind.Cifar10, false));
        foreach (var o in TrainOptions.All) cmd.Options.Add(o);
        cmd.SetAction(parse => Execute(parse, env));
        return cmd;
    }


    /// <summary>Why a --resume folder without a state.json cannot be resumed: a run in its first epoch now, one that stopped before its first checkpoint, or no run at all.</summary>
    private static string NoStateYet(string dir)
    {
        if (RunLock.IsHeld(dir))
            return $"--resume: the run in {dir} is in use by another cudaswa process, still in its first epoch (it has not committed a checkpoint yet); wait for it to finish or stop it first.";
        if (File.Exists(Path.Combine(dir, "train.log")))
            return $"--resume: the run in {dir} stopped before it committed its first checkpoint (during its first epoch), so there is nothing to resume; " +
                   $"run the same command again (with --out {dir}) to start it over.";
        return $"--resume: {dir} is not a cudaswa run folder (it has no {Checkpoint.StateFile} and no train.log).";
    }

    private static int Execute(ParseResult p, CliEnvironment env)
    {
        string? resume = p.GetValue(TrainOptions.Resume);
        RunSettings settings;
        TrainingState? state = null;
        string outDir;
        if (resume is not null)
        {
            if (Directory.Exists(resume) && !File.Exists(Path.Combine(resume, Checkpoint.StateFile)) && !Checkpoint.HasGenerations(resume))
                throw new OptionException(NoStateYet(resume));
            // Checked before the checkpoints are judged: a run still writing them is not damaged, only busy.
            if (Directory.Exists(resume) && RunLock.IsHeld(resume))
                throw new OptionException($"--resume: another cudaswa process is using {resume}; wait for it to finish or stop it first.");
            // Every rank of a job reads the run folder; only rank 0 (the one that writes it) sets a damaged checkpoint aside.
            bool writer = Distributed.Collective.LaunchedRank(env.Variables) == 0;
            try { state = Checkpoint.ReadIntactState(resume, writer ? note => env.Console.MarkupLine($"[yellow]{Markup.Escape(note)}[/]") : null, repair: writer); }
            catch (DataFormatException e) when (e.Message.StartsWith("Run folder", StringComparison.Ordinal)) { throw new OptionException($"--resume: {e.Message}"); }
            settings = TrainOptions.ResumeOptions(p, RunSettings.FromState(state, Path.Combine(resume, Checkpoint.StateFile)), resume);
            string? o = p.GetValue(TrainOptions.Out);
            if (o is not null && Path.GetFullPath(o) != Path.GetFullPath(resume))
                throw new OptionException($"--out {o} differs from --resume {resume}: a resumed run continues in its own folder.");
            outDir = resume;
            if (state.NextEpoch > settings.Training.Epochs)
                throw new OptionException($"--epochs {settings.Training.Epochs}: the run in {resume} has already trained {state.NextEpoch} epochs, and a run cannot be shortened; " +
                    $"resume with --epochs {state.NextEpoch} or more, or start a new run.");
        }
        else
        {
            settings = TrainOptions.BuildOptions(p);
            outDir = p.GetValue(TrainOptions.Out) ?? Path.Combine("runs", $"{settings.Preset ?? settings.Training.Model}-{DateTime.Now:yyyyMMdd-HHmmss}");
            if (string.IsNullOrWhiteSpace(outDir)) throw new OptionException("--out: the run folder name is empty.");
            if (File.Exists(outDir)) throw new OptionException($"--out {outDir} is a file, not a folder.");
            if (File.Exists(Path.Combine(outDir, Checkpoint.StateFile)))
                throw new OptionException($"--out {outDir} already holds a run; continue it with --resume {outDir} or choose another --out.");
        }

        return Train(settings, state, outDir, env, p.GetValue(TrainOptions.HaltAfterBatches), p.GetValue(TrainOptions.Profile));
    }

    /// <summary>
    /// Trains (or, with <paramref name="state"/>, resumes) the run <paramref name="settings"/> describe in
    /// <paramref name="outDir"/>, with every output a `cudaswa train` run leaves; returns the exit code.
    /// The member runs of `cudaswa experiment` come through here too.
    /// </summary>
    internal static int Train(RunSettings settings, TrainingState? state, string outDir, CliEnvironment env, int? haltAfterBatches = null, bool profile = false)
    {
        // Everything up to creating the folder only reads: a bad data file or checkpoint writes nothing.
        var options = settings.Training;
        var (train, test) = DataSources.Load(settings, env: env);
        if (train.NumClasses != settings.NumClasses)
            throw new OptionException($"--dataset: the data has {train.NumClasses} classes, {settings.Dataset} has {settings.NumClasses}.");
        // Launched as one of several ranks (mpiexec -n N): data-parallel; rank 0 writes, the others follow.
        // torchrun-style variables without MPI's: N processes that cannot talk would each train alone into one folder.
        if (!Distributed.Collective.LaunchedAsRanks(env.Variables) && int.TryParse(env.Variables("WORLD_SIZE"), out int world) && world > 1 && env.Variables("RANK") is not null)
            throw new OptionException($"This process is one of {world} started with torchrun-style variables (RANK, WORLD_SIZE), but cudaswa's ranks exchange over MPI: " +
                "launch them with mpiexec -n N (or srun --mpi=pmi2 on Slurm).");
        using var launcher = Distributed.Collective.FromLauncher(env.Variables);
        try
        {
            return TrainAsRank(settings, state, outDir, env, haltAfterBatches, profile, train, test, launcher);
        }
        catch (Exception e) when (launcher.Size > 1)
        {
            // One rank failing (from opening its device on) must not leave the others waiting in an exchange: end the whole job.
            AbortJob(e, launcher, env);
            throw;
        }
    }

    /// <summary>Says which rank failed and why, then ends every rank (NCCL's work on the GPU first, when it is in use).</summary>
    private static void AbortJob(Exception e, Distributed.Collective collective, CliEnvironment env)
    {
        env.Error.WriteLine($"rank {collective.Rank} of {collective.Size}: {e.Message}");
        env.Error.Flush();
        // The launcher forwards each rank's output asynchronously and MPI_Abort tears the job down at
        // once: a moment first, so the reason reaches the user (on a loaded machine it can be lost).
        Thread.Sleep(500);
        collective.Abort(e is OptionException or DataFormatException ? ExitCodes.BadInput : ExitCodes.InternalError);
    }

    /// <summary>
    /// This process's part of the run: its device (rank L of a machine on GPU L), the ranks'
    /// agreement on CUDA and NCCL (decided together, so no rank waits in an exchange another never
    /// enters), then rank 0 trains and writes while the others follow.
    /// </summary>
    private static int TrainAsRank(RunSettings settings, TrainingState? state, string outDir, CliEnvironment env, int? haltAfterBatches, bool profile,
        Data.ImageDataset train, Data.ImageDataset test, Distributed.Collective launcher)
    {
        var options = settings.Training;
        if (options.SwapPhase2 is not null && launcher.Size < 2)
            throw new OptionException("--swap-phase2: SWAP trains one model per rank in phase 2 and averages them: launch with at least two ranks (mpiexec -n N cudaswa train ...).");
        var backend = DeviceChoice.Open(DeviceChoice.ForRank(settings.Device, launcher, env.Variables), settings.Tf32, out string deviceDescription);
        using var _ = backend;
        // GPU ranks sum their gradients with NCCL, GPU to GPU, when every rank has it; MPI carries the rest.
        using var nccl = DataParallelRun.OpenExchange(launcher, backend, out string? ncclMissing);
        var collective = (Distributed.Collective?)nccl ?? launcher;
        try
        {
            return collective.IsRoot
                ? RootTrainer.Run(settings, state, outDir, env, haltAfterBatches, profile, train, test, backend, deviceDescription, collective, ncclMissing)
                : ExitCodes.Of(DataParallelRun.Follow(settings.Training, backend, train, test, outDir, state, collective, env.Cancel.Token));
        }
        catch (Exception e) when (collective.Size > 1)
        {
            // Abort before the device and NCCL's communicator are disposed: freeing them would wait on exchanges whose peers never come.
            AbortJob(e, collective, env);
            throw;
        }
    }
}
