using System.CommandLine;
using CudaSwa.Averaging;
using CudaSwa.Cli.Output;
using CudaSwa.Data;
using CudaSwa.Optim;
using CudaSwa.IO;
using CudaSwa.Tensors;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa train`: options, presets, validation before any file is written, then the run.</summary>
public static class TrainCommand
{
    private static readonly Option<string?> Preset = new("--preset")
    {
        Description = "Start from a named configuration (other options override it): " + string.Join("; ", Presets.All.Select(p => $"{p.Name} - {p.Description}")) + ".",
    };
    private static readonly Option<bool> SgdOnly = new("--sgd-only") { Description = "Plain SGD, no averaging (the paper presets then use the SGD budget and schedule)." };
    private static readonly Option<string?> Model = new("--model") { Description = "resnet8/20/32/44/56/110, preresnet110 (bottleneck, as the SWA paper), preresnet110-basic, preresnet164, vgg16, vgg16bn, wrn28x10." };
    private static readonly Option<string?> Dataset = new("--dataset") { Description = "cifar10 or cifar100." };
    private static readonly Option<string?> Data = new("--data") { Description = "Folder with CIFAR binaries. Without it: the embedded synthetic dataset." };
    private static readonly Option<int?> Epochs = new("--epochs") { Description = "Number of epochs." };
    private static readonly Option<int?> Batch = new("--batch") { Description = "Batch size." };
    private static readonly Option<double?> Lr = new("--lr") { Description = "Initial learning rate." };
    private static readonly Option<double?> Momentum = new("--momentum") { Description = "SGD momentum." };
    private static readonly Option<double?> Wd = new("--wd") { Description = "L2 weight decay (PyTorch semantics: added to the gradient)." };
    private static readonly Option<bool> Nesterov = new("--nesterov") { Description = "Nesterov momentum." };
    private static readonly Option<string?> Schedule = new("--schedule") { Description = "swa (the paper's piecewise-linear), swalr (cosine then SWALR anneal), cyclic, cosine, constant." };
    private static readonly Option<int?> SwapPhase2 = new("--swap-phase2") { Description = "SWAP (with mpiexec -n N, N >= 2): data-parallel with the whole batch up to this epoch, then each rank alone with batch/N and its own data order, then the ranks' weights averaged and BN recomputed. Implies --sgd-only." };
    private static readonly Option<bool> SyncBn = new("--sync-bn") { Description = "Data-parallel (mpiexec -n N): every BN layer normalises with the whole batch's statistics over all ranks (synchronised BN) instead of its rank's shard; N ranks then train as one process would." };
    private static readonly Option<int?> SwaStart = new("--swa-start") { Description = "Epoch (1-based) after which averaging begins; the schedules reach swa-lr by then." };
    private static readonly Option<double?> SwaLr = new("--swa-lr") { Description = "Learning rate during averaging (cyclic: the top of each cycle)." };
    private static readonly Option<double?> SwaLrMin = new("--swa-lr-min") { Description = "Cyclic schedule: the bottom of each cycle (default swa-lr/10)." };
    private static readonly Option<int?> Cycle = new("--cycle") { Description = "Cyclic schedule: cycle length in epochs; SWA averages at each cycle end." };
    private static readonly Option<int?> AnnealEpochs = new("--anneal-epochs") { Description = "swalr: epochs to anneal to swa-lr." };
    private static readonly Option<string?> Anneal = new("--anneal") { Description = "swalr: cos or linear." };
    private static readonly Option<string?> Average = new("--average") { Description = "swa (equal-weight running mean), ema, or swag (SWA plus a Gaussian around it: adds a Bayesian-model-average row, calibration.png)." };
    private static readonly Option<int?> SwagRank = new("--swag-rank") { Description = "SWAG: deviation columns kept (default 20; 0: diagonal only)." };
    private static readonly Option<int?> SwagSamples = new("--swag-samples") { Description = "SWAG: weight samples in the final Bayesian model average (default 30)." };
    private static readonly Option<double?> SwagScale = new("--swag-scale") { Description = "SWAG: scale of the sampled covariance (default 0.5, the paper's)." };
    private static readonly Option<double?> EmaDecay = new("--ema-decay") { Description = "EMA decay (with --average ema; averaged every step)." };
    private static readonly Option<int?> AverageEverySteps = new("--average-every-steps") { Description = "Average every k steps instead of per epoch/cycle." };
    private static readonly Option<string?> BnUpdate = new("--bn-update") { Description = "BN recompute for the averaged model: exact (population statistics, default), sample-weighted (SWA reference code), equal-batches (PyTorch update_bn), none." };
    private static readonly Option<int?> EvalEvery = new("--eval-every") { Description = "Evaluate SGD and SWA models every k epochs (always after the last)." };
    private static readonly Option<string?> EvalAt = new("--eval-at") { Description = "Also evaluate after these epochs (comma-separated, from 1), e.g. the budgets of an experiment." };
    private static readonly Option<string?> Device = new("--device") { Description = "auto (CUDA when it works, else CPU), cpu, cuda or cuda:N." };
    private static readonly Option<bool> Tf32 = new("--tf32") { Description = "Allow TF32 tensor-core math on the GPU (faster; default: exact float32)." };
    private static readonly Option<ulong?> Seed = new("--seed") { Description = "Seed for initialisation, batch order, augmentation and dropout." };
    private static readonly Option<string?> Out = new("--out") { Description = "Run folder for checkpoints, metrics.csv, summary.json, curves.png, train.log (default runs/<preset>-<time>)." };
    private static readonly Option<string?> Resume = new("--resume") { Description = "Continue the run saved in this folder, bit for bit." };
    private static readonly Option<string?> Padding = new("--padding") { Description = "Augmentation padding: zero (paper) or reflect (fastai)." };
    private static readonly Option<int?> TrainSubset = new("--train-subset") { Description = "Use a class-balanced, seeded subset of N training images." };
    private static readonly Option<int?> TestSubset = new("--test-subset") { Description = "Use a class-balanced, seeded subset of N test images." };
    private static readonly Option<int?> SyntheticTrain = new("--synthetic-train") { Description = "Size of the synthetic training set (without --data)." };
    private static readonly Option<int?> SyntheticTest = new("--synthetic-test") { Description = "Size of the synthetic test set (without --data)." };
    private static readonly Option<bool> NoEnsemble = new("--no-ensemble") { Description = "Skip the prediction-ensemble baseline." };
    private static readonly Option<bool> Profile = new("--profile")
    {
        Description = "Time every backend op (synchronising the device around each: slower, for diagnosis); the per-op table goes to profile.txt after each epoch and to the console at the end.",
    };
    private static readonly Option<int?> HaltAfterBatches = new("--halt-after-batches") { Description = "Testing aid: behave as if Ctrl-C came after N batches.", Hidden = true };

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("train", "Train a CIFAR model with SGD and Stochastic Weight Averaging; prints SGD vs SWA vs ensemble.");
        foreach (var o in new Option[] { Preset, SgdOnly, Model, Dataset, Data, Epochs, Batch, Lr, Momentum, Wd, Nesterov, Schedule, SwaStart, SwaLr, SwaLrMin,
                     Cycle, AnnealEpochs, Anneal, Average, SwagRank, SwagSamples, SwagScale, EmaDecay, AverageEverySteps, BnUpdate, EvalEvery, EvalAt, Device, Tf32, Seed, Out, Resume, Padding,
                     TrainSubset, TestSubset, SyntheticTrain, SyntheticTest, NoEnsemble, Profile, HaltAfterBatches, SwapPhase2, SyncBn })
            cmd.Options.Add(o);
        cmd.SetAction(parse => Execute(parse, env));
        return cmd;
    }

    /// <summary>A comma-separated list of epochs (from 1), with an error naming <paramref name="option"/>.</summary>
    internal static int[] ParseEpochs(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var epochs = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out epochs[i]) || epochs[i] < 1)
                throw new OptionException($"{option}: '{parts[i]}' is not an epoch number (1, 2, ...); expected a comma-separated list such as 150,188,225.");
        if (epochs.Length == 0) throw new OptionException($"{option}: no epochs given; expected a comma-separated list such as 150,188,225.");
        return epochs;
    }

    private static T ParseEnum<T>(string? value, string option, T fallback, params (string Name, T Value)[] names)
    {
        if (value is null) return fallback;
        foreach (var (n, v) in names)
            if (string.Equals(n, value, StringComparison.OrdinalIgnoreCase)) return v;
        throw new OptionException($"{option}: '{value}' is not valid; expected {string.Join(", ", names.Select(n => n.Name))}.");
    }

    /// <summary>Preset defaults, then every option the user gave.</summary>
    internal static RunSettings BuildOptions(ParseResult p)
    {
        bool sgdOnly = p.GetValue(SgdOnly) || p.GetValue(SwapPhase2) is not null;
        var dataset = ParseEnum(p.GetValue(Dataset), "--dataset", DatasetKind.Cifar10, ("cifar10", DatasetKind.Cifar10), ("cifar100", DatasetKind.Cifar100));
        var preset = Presets.Find(p.GetValue(Preset) ?? "quick");
        var o = preset.Create(dataset, sgdOnly);
        if (preset.NeedsRealData && p.GetValue(Data) is null)
            throw new OptionException($"--preset {preset.Name} reproduces a paper experiment and needs real data: pass --data DIR. {DataSources.CifarHint}");
        o = ApplyGiven(o, p);
        if (o.Training.SgdOnly && p.GetValue(SwaStart) is null) o = o with { Training = o.Training with { SwaStart = null } };
        o.Validate();
        return o;
    }

    /// <summary>The options the user gave on the command line, over <paramref name="s"/> (a preset's, or a saved run's).</summary>
    private static RunSettings ApplyGiven(RunSettings s, ParseResult p)
    {
        var o = s.Training;
        string? bn = p.GetValue(BnUpdate)?.Trim().ToLowerInvariant();
        return s with
        {
            Dataset = ParseEnum(p.GetValue(Dataset), "--dataset", s.Dataset, ("cifar10", DatasetKind.Cifar10), ("cifar100", DatasetKind.Cifar100)),
            DataDir = p.GetValue(Data) ?? s.DataDir,
            Device = (p.GetValue(Device) ?? s.Device).Trim().ToLowerInvariant(),
            Tf32 = p.GetValue(Tf32) || s.Tf32,
            TrainSubset = p.GetValue(TrainSubset) ?? s.TrainSubset,
            TestSubset = p.GetValue(TestSubset) ?? s.TestSubset,
            SyntheticTrain = p.GetValue(SyntheticTrain) ?? s.SyntheticTrain,
            SyntheticTest = p.GetValue(SyntheticTest) ?? s.SyntheticTest,
            Training = o with
            {
                SgdOnly = p.GetValue(SgdOnly) || o.SgdOnly || p.GetValue(SwapPhase2) is not null,
                SwapPhase2 = p.GetValue(SwapPhase2) ?? o.SwapPhase2,
                SyncBatchNorm = p.GetValue(SyncBn) || o.SyncBatchNorm,
                Model = p.GetValue(Model) ?? o.Model,
                Epochs = p.GetValue(Epochs) ?? o.Epochs,
                BatchSize = p.GetValue(Batch) ?? o.BatchSize,
                Lr = p.GetValue(Lr) ?? o.Lr,
                Momentum = p.GetValue(Momentum) ?? o.Momentum,
                WeightDecay = p.GetValue(Wd) ?? o.WeightDecay,
                Nesterov = p.GetValue(Nesterov) || o.Nesterov,
                Schedule = ParseEnum(p.GetValue(Schedule), "--schedule", o.Schedule, ("swa", ScheduleKind.Swa), ("swalr", ScheduleKind.Swalr),
                    ("cyclic", ScheduleKind.Cyclic), ("cosine", ScheduleKind.Cosine), ("constant", ScheduleKind.Constant)),
                SwaStart = p.GetValue(SwaStart) ?? o.SwaStart,
                SwaLr = p.GetValue(SwaLr) ?? o.SwaLr,
                SwaLrMin = p.GetValue(SwaLrMin) ?? o.SwaLrMin,
                Cycle = p.GetValue(Cycle) ?? o.Cycle,
                AnnealEpochs = p.GetValue(AnnealEpochs) ?? o.AnnealEpochs,
                Anneal = ParseEnum(p.GetValue(Anneal), "--anneal", o.Anneal, ("cos", AnnealStrategy.Cos), ("linear", AnnealStrategy.Linear)),
                Average = ParseEnum(p.GetValue(Average), "--average", o.Average, ("swa", AveragingKind.Swa), ("ema", AveragingKind.Ema), ("swag", AveragingKind.Swag)),
                SwagRank = p.GetValue(SwagRank) ?? o.SwagRank,
                SwagSamples = p.GetValue(SwagSamples) ?? o.SwagSamples,
                SwagScale = p.GetValue(SwagScale) ?? o.SwagScale,
                EmaDecay = p.GetValue(EmaDecay) ?? o.EmaDecay,
                AverageEverySteps = p.GetValue(AverageEverySteps) ?? o.AverageEverySteps,
                BnUpdate = ParseEnum(bn, "--bn-update", o.BnUpdate, ("exact", BatchNormRecomputeMode.Exact), ("sample-weighted", BatchNormRecomputeMode.SampleWeighted),
                    ("equal-batches", BatchNormRecomputeMode.EqualBatches), ("none", BatchNormRecomputeMode.None)),
                EvalEvery = p.GetValue(EvalEvery) ?? o.EvalEvery,
                EvaluateAt = p.GetValue(EvalAt) is string at ? ParseEpochs(at, "--eval-at") : o.EvaluateAt,
                Seed = p.GetValue(Seed) ?? o.Seed,
                Padding = ParseEnum(p.GetValue(Padding), "--padding", o.Padding, ("zero", PaddingMode.Zero), ("reflect", PaddingMode.Reflect)),
                Ensemble = !p.GetValue(NoEnsemble) && o.Ensemble,
            },
        };
    }

    /// <summary>The command-line option behind each saved setting (state.json's names), for resume messages.</summary>
    private static readonly Dictionary<string, string> OptionOf = new(StringComparer.Ordinal)
    {
        ["model"] = "--model", ["dataset"] = "--dataset", ["data_dir"] = "--data", ["synthetic_train"] = "--synthetic-train",
        ["synthetic_test"] = "--synthetic-test", ["train_subset"] = "--train-subset", ["test_subset"] = "--test-subset", ["padding"] = "--padding",
        ["batch_size"] = "--batch", ["lr"] = "--lr", ["momentum"] = "--momentum", ["weight_decay"] = "--wd", ["nesterov"] = "--nesterov",
        ["schedule"] = "--schedule", ["swa_start"] = "--swa-start", ["swa_lr"] = "--swa-lr", ["swa_lr_min"] = "--swa-lr-min", ["cycle"] = "--cycle",
        ["anneal_epochs"] = "--anneal-epochs", ["anneal"] = "--anneal", ["sgd_only"] = "--sgd-only", ["average"] = "--average",
        ["ema_decay"] = "--ema-decay", ["average_every_steps"] = "--average-every-steps", ["bn_update"] = "--bn-update",
        ["ensemble"] = "--no-ensemble", ["seed"] = "--seed", ["evaluate_at"] = "--eval-at", ["swag_rank"] = "--swag-rank", ["swag_samples"] = "--swag-samples",
        ["swag_scale"] = "--swag-scale",
    };

    /// <summary>Settings a resume may change; anything else given must equal what the run was started with.</summary>
    private static readonly HashSet<string> ResumeMayChange = ["epochs", "eval_every", "evaluate_at", "device", "tf32", "swag_samples", "swag_scale"];

    /// <summary>
    /// The saved run's settings with the allowed changes (--epochs, --eval-every, --device, --tf32).
    /// Other options may be repeated with their saved values (so the original command line plus
    /// --resume works); a different value is an error naming the option, the saved and the given value.
    /// </summary>
    private static RunSettings ResumeOptions(ParseResult p, RunSettings saved, string resume)
    {
        if (p.GetValue(Preset) is string preset && !string.Equals(preset, saved.Preset, StringComparison.OrdinalIgnoreCase))
            throw new OptionException($"--preset {preset}: the run in {resume} was started {(saved.Preset is null ? "without a preset" : $"with --preset {saved.Preset}")}; a resumed run keeps its options.");
        var given = ApplyGiven(saved, p);
        if (given.DataDir is not null && saved.DataDir is not null && Path.GetFullPath(given.DataDir) == Path.GetFullPath(saved.DataDir))
            given = given with { DataDir = saved.DataDir };
        var changed = new List<string>();
        void Compare(System.Text.Json.Nodes.JsonNode? was, System.Text.Json.Nodes.JsonNode? now)
        {
            var a = was as System.Text.Json.Nodes.JsonObject ?? [];
            var b = now as System.Text.Json.Nodes.JsonObject ?? [];
            foreach (var name in a.Select(kv => kv.Key).Union(b.Select(kv => kv.Key)))
            {
                if (ResumeMayChange.Contains(name)) continue;
                string before = a[name]?.ToJsonString() ?? "null", after = b[name]?.ToJsonString() ?? "null";
                if (before != after) changed.Add($"{OptionOf.GetValueOrDefault(name, name)} (saved {before}, given {after})");
            }
        }
        Compare(System.Text.Json.JsonSerializer.SerializeToNode(saved.Training, TrainingJsonContext.Default.TrainingOptions),
            System.Text.Json.JsonSerializer.SerializeToNode(given.Training, TrainingJsonContext.Default.TrainingOptions));
        Compare(saved.ToJson(), given.ToJson());
        if (changed.Count > 0)
            throw new OptionException($"--resume continues the run in {resume} with the options saved in its {Checkpoint.StateFile}; " +
                $"{string.Join(", ", changed.Distinct())} cannot be changed (only --epochs, --eval-every, --eval-at, --device, --tf32, --swag-samples and --swag-scale can).");
        given.Validate();
        return given;
    }

    private static int Execute(ParseResult p, CliEnvironment env)
    {
        string? resume = p.GetValue(Resume);
        RunSettings settings;
        TrainingState? state = null;
        string outDir;
        if (resume is not null)
        {
            try { state = Checkpoint.ReadState(resume); }
            catch (DataFormatException e) when (e.Message.StartsWith("Run folder", StringComparison.Ordinal)) { throw new OptionException($"--resume: {e.Message}"); }
            settings = ResumeOptions(p, RunSettings.FromState(state, Path.Combine(resume, Checkpoint.StateFile)), resume);
            string? o = p.GetValue(Out);
            if (o is not null && Path.GetFullPath(o) != Path.GetFullPath(resume))
                throw new OptionException($"--out {o} differs from --resume {resume}: a resumed run continues in its own folder.");
            outDir = resume;
            if (state.NextEpoch > settings.Training.Epochs)
                throw new OptionException($"--epochs {settings.Training.Epochs}: the run in {resume} has already trained {state.NextEpoch} epochs, and a run cannot be shortened; " +
                    $"resume with --epochs {state.NextEpoch} or more, or start a new run.");
        }
        else
        {
            settings = BuildOptions(p);
            outDir = p.GetValue(Out) ?? Path.Combine("runs", $"{settings.Preset ?? settings.Training.Model}-{DateTime.Now:yyyyMMdd-HHmmss}");
            if (string.IsNullOrWhiteSpace(outDir)) throw new OptionException("--out: the run folder name is empty.");
            if (File.Exists(outDir)) throw new OptionException($"--out {outDir} is a file, not a folder.");
            if (File.Exists(Path.Combine(outDir, Checkpoint.StateFile)))
                throw new OptionException($"--out {outDir} already holds a run; continue it with --resume {outDir} or choose another --out.");
        }

        return Train(settings, state, outDir, env, p.GetValue(HaltAfterBatches), p.GetValue(Profile));
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
        var (train, test) = DataSources.Load(settings);
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
        bool cuda = backend is Cuda.CudaBackend;
        if (launcher.Any(cuda) && launcher.Any(!cuda))
            throw new OptionException("--device: some ranks opened a GPU and others the CPU (a GPU missing or failing on some machine); all ranks must train on the same kind of device.");
        // GPU ranks sum their gradients with NCCL, GPU to GPU, when every rank has it; MPI carries the rest.
        string? ncclMissing = null;
        bool useNccl = cuda && launcher.Size > 1 && !launcher.Any(!Distributed.NcclCollective.IsAvailable(out ncclMissing));
        if (cuda && launcher.Size > 1 && !useNccl) ncclMissing ??= "NCCL is missing on another rank's machine.";
        using var nccl = useNccl ? Distributed.NcclCollective.Open(launcher, backend) : null;
        var collective = (Distributed.Collective?)nccl ?? launcher;
        try
        {
            return collective.IsRoot
                ? TrainRoot(settings, state, outDir, env, haltAfterBatches, profile, train, test, backend, deviceDescription, collective, ncclMissing)
                : Follow(settings, state, outDir, env, train, test, backend, collective);
        }
        catch (Exception e) when (collective.Size > 1)
        {
            // Abort before the device and NCCL's communicator are disposed: freeing them would wait on exchanges whose peers never come.
            AbortJob(e, collective, env);
            throw;
        }
    }

    /// <summary>
    /// The ranks' resumed positions must agree before any rank decides on its own (e.g. "complete,
    /// nothing to do"): a crash between two ranks' checkpoint saves is an error here, not a hang.
    /// </summary>
    private static void SamePosition(Trainer trainer, Distributed.Collective collective)
    {
        if (collective.Size > 1) collective.CheckSame(trainer.State.GlobalStep, "The position each rank resumed from (global step)");
    }

    /// <summary>The checkpoint folder of rank <paramref name="rank"/> &gt; 0 of a SWAP run (its phase-2 model is its own).</summary>
    public static string RankFolder(string outDir, int rank) => Path.Combine(outDir, "ranks", $"rank-{rank}");

    /// <summary>
    /// A rank other than 0 of a data-parallel run: the same trainer without a run folder (rank 0
    /// writes everything), resumed from rank 0's checkpoint once rank 0 has tidied the folder,
    /// trained in step with the others; prints nothing. In a SWAP run the rank keeps checkpoints of
    /// its own under ranks/rank-R (phase 2 trains a model per rank) and resumes from them.
    /// </summary>
    private static int Follow(RunSettings settings, TrainingState? state, string outDir, CliEnvironment env, Data.ImageDataset train, Data.ImageDataset test,
        Backend backend, Distributed.Collective collective)
    {
        var options = settings.Training;
        string? own = options.SwapPhase2 is null ? null : RankFolder(outDir, collective.Rank);
        if (own is not null) Directory.CreateDirectory(own);
        using var trainer = new Trainer(options, backend, train, test, own);
        if (state is not null && own is not null) (state, _) = SwapCheckpoints.Agree(outDir, state, collective);
        collective.Barrier();
        if (state is not null)
        {
            // Inside SWAP's phase 2 this rank's model is its own; before it, rank 0's checkpoint is exactly every rank's.
            if (!state.StoppedInSwapPhase2) trainer.Resume(outDir, state);
            else if (File.Exists(Path.Combine(own!, Checkpoint.StateFile))) trainer.Resume(own!, Checkpoint.ReadState(own!));
            else throw new DataFormatException($"{own} holds no checkpoint of rank {collective.Rank}, and the SWAP run stopped in phase 2, where each rank's model is its own: it cannot continue.");
        }
        SamePosition(trainer, collective);
        if (trainer.IsComplete) return ExitCodes.Ok;
        trainer.DistributeOver(collective);
        return trainer.Run(env.Cancel.Token) switch
        {
            RunOutcome.Completed => ExitCodes.Ok,
            RunOutcome.Interrupted => ExitCodes.Interrupted,
            _ => ExitCodes.Diverged,
        };
    }

    private static int TrainRoot(RunSettings settings, TrainingState? state, string outDir, CliEnvironment env, int? haltAfterBatches, bool profile,
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
        if (state is not null && options.SwapPhase2 is not null && collective.Size > 1) (state, rankNote) = SwapCheckpoints.Agree(outDir, state, collective);
        if (state is not null)
        {
            trainer.Resume(outDir, state);
            // A crash can come between committing a checkpoint and updating the files at the top
            // of the folder: bring them in line with the committed state before going on.
            Checkpoint.RemoveStale(outDir, state);
            Checkpoint.PublishOutputs(outDir, state);
        }
        collective.Barrier();
        SamePosition(trainer, collective);
        using var run = new RunFiles(outDir, append: state is not null);
        var reporter = new ConsoleReporter(env, run, settings, events);
        DeviceChoice.ForwardNotices(backend, reporter.Note);
        if (rankNote is not null) reporter.Note(rankNote);
        if (state is not null && trainer.IsComplete)
            return Finish(reporter, run, trainer, settings, train, test, backend, outDir, RunOutcome.Completed,
                $"The run in {outDir} is complete ({state.NextEpoch} of {options.Epochs} epochs): nothing left to train. Its outputs are checked and in place.");

        reporter.Line($"cudaswa train{(state is null ? "" : $" (resumed at epoch {state.NextEpoch + 1}, batch {state.NextBatch})")}: {deviceDescription}");
        reporter.Line($"data: {DataSources.Describe(settings, train, test)}");
        if (DataSources.IsSynthetic(settings))
            reporter.Note($"This run uses SYNTHETIC data generated in memory, not CIFAR: the numbers show that SWA works, not CIFAR accuracy. {DataSources.CifarHint}");
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
        reporter.Header();
        try
        {
            while (!trainer.IsComplete)
            {
                outcome = Resources.OutOfMemoryAs(() => reporter.RunEpoch(trainer, options.Epochs, cancel.Token),
                    $"training {options.Model} at batch {options.BatchSize} on {backend.Name}", "--batch", options.BatchSize);
                run.WriteMetrics(trainer.State.History);
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
        catch (IOException e) when (Resources.IsDiskFull(e))
        {
            throw new OutOfResourcesException($"The disk holding {outDir} is full ({e.Message}). {Resources.LastGoodCheckpoint(outDir)}");
        }
    }

    /// <summary>metrics.csv, curves.png and summary.json for the run as it stands, then the closing lines and the exit code.</summary>
    private static int Finish(ConsoleReporter reporter, RunFiles run, Trainer trainer, RunSettings settings, Data.ImageDataset train, Data.ImageDataset test,
        Backend backend, string outDir, RunOutcome outcome, string? message)
    {
        var options = settings.Training;
        run.WriteMetrics(trainer.State.History);
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
                    reporter.Note($"Synthetic data: to train on real CIFAR-10, run `cudaswa train --data DIR` (or a --preset paper-*). {DataSources.CifarHint}");
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
