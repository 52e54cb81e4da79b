using System.CommandLine;
using CudaSwa.Averaging;
using CudaSwa.Cli.Output;
using CudaSwa.Data;
using CudaSwa.Optim;
using CudaSwa.IO;
using CudaSwa.Tensors;
using CudaSwa.Training;
using CudaSwa.Util;
using CudaSwa.Training.Parallel;

namespace CudaSwa.Cli.Commands;

/// <summary>
/// `cudaswa train` on the writing rank (the only process, or rank 0 of several): the run folder and
/// its lock, the resume, the console, metrics.csv, the plots and summary.json, and the exit code.
/// </summary>
internal static class RootTrainer
{
    internal static int Run(RunSettings settings, TrainingState? state, string outDir, CliEnvironment env, int? haltAfterBatches, bool profile,
        Data.ImageDataset train, Data.ImageDataset test, Backend backend, string deviceDescription, Distributed.Collective collective, string? ncclMissing)
    {
        string? resume = state is null ? null : outDir;
        var options = settings.Training;
        var events = new TrainerEvents();
        using var trainer = Resources.OutOfMemoryAs(() => new Trainer(options, backend, train, test, outDir, events) { HostSettings = settings.ToJson() },
            $"building {options.Model} for batch {options.BatchSize} on {backend.Name}", "--batch", options.BatchSize);
        RunFolder.Create(outDir, resume is not null ? "--resume" : "--out");
        using var runLock = RunLock.Acquire(outDir);
        string? rankNote = null;
        if (state is not null) (state, rankNote) = DataParallelRun.AgreeOnResume(outDir, state, collective);
        if (state is not null)
        {
            try
            {
                trainer.Resume(outDir, state);
            }
            catch (ArgumentException e) when (e.ParamName == nameof(TrainingOptions.Epochs))
            {
                throw RunSettings.ToOption(e); // a longer run that would re-stretch the schedule: refused before anything is written
            }
            // A crash can come between committing a checkpoint and updating the files at the top
            // of the folder: bring them in line with the committed state before going on.
            Checkpoint.RemoveStale(outDir, state);
            Checkpoint.PublishOutputs(outDir, state);
        }
        collective.Barrier();
        DataParallelRun.CheckSamePosition(trainer, collective);
        using var run = new RunFiles(outDir, append: state is not null);
        var reporter = new ConsoleReporter(env, run, settings, events);
        DeviceChoice.ForwardNotices(backend, reporter.Note);
        if (rankNote is not null) reporter.Note(rankNote);
        if (state is not null && state.NextEpoch >= state.Options.Epochs && options.Epochs > state.Options.Epochs)
            reporter.Line($"extending a finished run from {state.Options.Epochs} to {options.Epochs} epochs (the learning rates of the epochs already run are unchanged)");
        if (state is not null && trainer.IsComplete)
            return Finish(reporter, run, trainer, settings, train, test, backend, outDir, RunOutcome.Completed,
                $"The run in {outDir} is complete ({state.NextEpoch} of {options.Epochs} epochs): nothing left to train. Its outputs are checked and in place.");

        reporter.Line($"cudaswa train{(state is null ? "" : $" (resumed at epoch {state.NextEpoch + 1}, batch {state.NextBatch})")}: {deviceDescription}");
        reporter.Line($"data: {DataSources.Describe(settings, train, test)}");
        if (DataSources.IsSynthetic(settings))
            reporter.Note($"This run uses SYNTHETIC data generated in memory, not CIFAR: the numbers show that SWA works, not CIFAR accuracy. {DataSources.CifarHint()}");
        foreach (var line in trainer.Describe()) reporter.Line(line);
        if (collective.Size > 1)
        {
            trainer.DistributeOver(collective);
            reporter.Line($"data-parallel: {collective.Description}; each rank trains on its share of every batch of {options.BatchSize}, one gradient all-reduce per step; " +
                (options.SyncBatchNorm ? "BN synchronised (the whole batch's statistics); " : "BN per rank; ") + "rank 0 writes");
            if (ncclMissing is not null) reporter.Note($"The gradients go through host memory to MPI (slow on GPUs): {ncclMissing}");
        }
        else if (options.SyncBatchNorm) reporter.Note("--sync-bn has no effect on one process: BN already sees the whole batch.");
        reporter.Line($"output: {Path.GetFullPath(outDir)}");

        // Ctrl-C (or the testing aid --halt-after-batches) cancels; the trainer then saves and stops.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(env.Cancel.Token);
        if (haltAfterBatches is int halt)
        {
            int done = 0;
            reporter.Events.BatchCompleted += _ => { if (++done >= halt) cancel.Cancel(); };
        }
        var outcome = RunOutcome.Completed;
        var profiler = profile ? new OpProfiler() : null;
        backend.Profiler = profiler;
        reporter.Header(AverageName(trainer));
        try
        {
            while (!trainer.IsComplete)
            {
                outcome = Resources.OutOfMemoryAs(() => reporter.RunEpoch(trainer, options.Epochs, cancel.Token),
                    $"training {options.Model} at batch {options.BatchSize} on {backend.Name}", "--batch", options.BatchSize);
                run.WriteMetrics(trainer.State.History, AverageName(trainer));
                CurvesPlot.Write(Path.Combine(outDir, "curves.png"), trainer.State.History, settings);
                if (profiler is not null)
                    AtomicFile.WriteAllText(Path.Combine(outDir, "profile.txt"),
                        $"per-op wall time (device synchronised around each op) on {backend.Description}, this process's epochs so far:{Environment.NewLine}{profiler.Report()}{Environment.NewLine}");
                if (outcome != RunOutcome.Completed) break;
            }
            if (profiler is not null)
            {
                reporter.Line("where the time went (--profile; ops synchronised one by one, also in profile.txt):");
                foreach (string line in profiler.Report().Split(Environment.NewLine)) reporter.Line("  " + line);
            }
            return Finish(reporter, run, trainer, settings, train, test, backend, outDir, outcome, null);
        }
        catch (InsufficientSpaceException e)
        {
            throw new OutOfResourcesException($"Not enough disk space for the next checkpoint: {e.Message} {Resources.LastGoodCheckpoint(outDir)}");
        }
        catch (IOException e) when (Resources.IsDiskFull(e))
        {
            throw new OutOfResourcesException($"The disk holding {outDir} is full ({e.Message}). {Resources.LastGoodCheckpoint(outDir)}");
        }
    }

    /// <summary>The averaged model's name for column heads ("SWA" where the run averages nothing, so the columns stay where they are).</summary>
    private static string AverageName(Trainer trainer) => trainer.Averager?.AverageName ?? "SWA";

    /// <summary>metrics.csv, curves.png and summary.json for the run as it stands, then the closing lines and the exit code.</summary>
    private static int Finish(ConsoleReporter reporter, RunFiles run, Trainer trainer, RunSettings settings, Data.ImageDataset train, Data.ImageDataset test,
        Backend backend, string outDir, RunOutcome outcome, string? message)
    {
        var options = settings.Training;
        run.WriteMetrics(trainer.State.History, AverageName(trainer));
        CurvesPlot.Write(Path.Combine(outDir, "curves.png"), trainer.State.History, settings);
        var summary = new RunSummary
        {
            Outcome = outcome.ToString().ToLowerInvariant(),
            Model = options.Model,
            Data = DataSources.Describe(settings, train, test),
            Device = backend.Description,
            EpochsCompleted = trainer.State.NextEpoch,
            TotalSeconds = trainer.State.ElapsedSeconds,
            Options = options,
            Settings = settings,
            Results = outcome == RunOutcome.Completed ? trainer.FinalResults() : [],
        };
        run.WriteSummary(summary);
        CalibrationPlot.Write(Path.Combine(outDir, "calibration.png"), summary.Results, settings);
        switch (outcome)
        {
            case RunOutcome.Completed:
                reporter.Results(summary);
                if (message is not null) reporter.Note(message);
                if (DataSources.IsSynthetic(settings))
                    reporter.Note("Synthetic data: for real CIFAR-10, run `cudaswa data download cifar10`, then `cudaswa train --data cifar10` (or a --preset paper-* with --data cifar10).");
                return ExitCodes.Ok;
            case RunOutcome.Interrupted:
                reporter.Note($"Stopped. Continue exactly where it left off with: cudaswa train --resume {outDir}");
                return ExitCodes.Interrupted;
            default:
                reporter.Note($"Try a lower --lr (now {options.Lr:g4}){(options.Averaging ? " or --swa-lr" : "")}.");
                return ExitCodes.Diverged;
        }
    }
}
