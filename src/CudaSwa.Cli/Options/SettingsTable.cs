using System.CommandLine;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Training;

namespace CudaSwa.Cli.Options;

/// <summary>
/// Every setting of a run, each declared once (flag, property, help, resume rule). `cudaswa train`
/// takes all of them; the other commands take the shared ones (<see cref="Device"/>,
/// <see cref="Data"/>, <see cref="Dataset"/>, ...) as the same option objects. Defaults and ranges
/// live in <see cref="TrainingOptions"/> and <see cref="RunSettings"/>; the presets set their own values.
/// </summary>
internal static class SettingsTable
{
    private static RunSettings Train(RunSettings s, Func<TrainingOptions, TrainingOptions> change) => s with { Training = change(s.Training) };

    // ---- shared with other commands (data and device)
    public static readonly ChoiceSetting<DatasetKind> Dataset = new("--dataset", nameof(RunSettings.Dataset), "cifar10 or cifar100.",
        [("cifar10", DatasetKind.Cifar10), ("cifar100", DatasetKind.Cifar100)], (s, v) => s with { Dataset = v }, engine: false);
    public static readonly TextSetting Data = new("--data", nameof(RunSettings.DataDir), "CIFAR data: cifar10 or cifar100 for the copy in the data cache (downloaded on first use), " +
        "or a folder of the binary or python (torchvision) version, or the dataset's .tar.gz. Without it: the embedded synthetic dataset.",
        (s, v) => s with { DataDir = v }, engine: false, valueName: "PATH");
    public static readonly TextSetting Device = new("--device", nameof(RunSettings.Device), "auto (CUDA when it works, else CPU), cpu, cuda or cuda:N.",
        (s, v) => s with { Device = v.Trim().ToLowerInvariant() }, engine: false, resumeMayChange: true);
    public static readonly SwitchSetting Tf32 = new("--tf32", nameof(RunSettings.Tf32), "Allow TF32 tensor-core math on the GPU (faster; default: exact float32).",
        s => s with { Tf32 = true }, engine: false, resumeMayChange: true);
    public static readonly ValueSetting<int> TrainSubset = new("--train-subset", nameof(RunSettings.TrainSubset), "Use a class-balanced, seeded subset of N training images.",
        (s, v) => s with { TrainSubset = v }, engine: false, valueName: "N");
    public static readonly ValueSetting<int> TestSubset = new("--test-subset", nameof(RunSettings.TestSubset), "Use a class-balanced, seeded subset of N test images.",
        (s, v) => s with { TestSubset = v }, engine: false, valueName: "N");
    public static readonly ValueSetting<int> SyntheticTrain = new("--synthetic-train", nameof(RunSettings.SyntheticTrain), "Size of the synthetic training set (without --data).",
        (s, v) => s with { SyntheticTrain = v }, engine: false, valueName: "N");
    public static readonly ValueSetting<int> SyntheticTest = new("--synthetic-test", nameof(RunSettings.SyntheticTest), "Size of the synthetic test set (without --data).",
        (s, v) => s with { SyntheticTest = v }, engine: false, valueName: "N");

    // ---- the model and SGD
    public static readonly SwitchSetting SgdOnly = new("--sgd-only", nameof(TrainingOptions.SgdOnly), "Plain SGD, no averaging (the paper presets then use the SGD budget and schedule).",
        s => Train(s, o => o with { SgdOnly = true }));
    public static readonly TextSetting Model = new("--model", nameof(TrainingOptions.Model),
        "resnet8/20/32/44/56/110, preresnet110 (bottleneck, as the SWA paper), preresnet110-basic, preresnet164, vgg16, vgg16bn, wrn28x10.",
        (s, v) => Train(s, o => o with { Model = v }), valueName: "NAME");
    public static readonly ValueSetting<int> Epochs = new("--epochs", nameof(TrainingOptions.Epochs), "Number of epochs.",
        (s, v) => Train(s, o => o with { Epochs = v }), resumeMayChange: true, valueName: "N");
    public static readonly ValueSetting<int> Batch = new("--batch", nameof(TrainingOptions.BatchSize), "Batch size.",
        (s, v) => Train(s, o => o with { BatchSize = v }), valueName: "N");
    public static readonly ValueSetting<double> Lr = new("--lr", nameof(TrainingOptions.Lr), "Initial learning rate.",
        (s, v) => Train(s, o => o with { Lr = v }));
    public static readonly ValueSetting<double> Momentum = new("--momentum", nameof(TrainingOptions.Momentum), "SGD momentum.",
        (s, v) => Train(s, o => o with { Momentum = v }));
    public static readonly ValueSetting<double> Wd = new("--wd", nameof(TrainingOptions.WeightDecay), "L2 weight decay (PyTorch semantics: added to the gradient).",
        (s, v) => Train(s, o => o with { WeightDecay = v }));
    public static readonly SwitchSetting Nesterov = new("--nesterov", nameof(TrainingOptions.Nesterov), "Nesterov momentum.",
        s => Train(s, o => o with { Nesterov = true }));
    public static readonly ChoiceSetting<ScheduleKind> Schedule = new("--schedule", nameof(TrainingOptions.Schedule),
        "swa (the paper's piecewise-linear), swalr (cosine then SWALR anneal), cyclic, cosine, constant.",
        [("swa", ScheduleKind.Swa), ("swalr", ScheduleKind.Swalr), ("cyclic", ScheduleKind.Cyclic), ("cosine", ScheduleKind.Cosine), ("constant", ScheduleKind.Constant)],
        (s, v) => Train(s, o => o with { Schedule = v }));

    // ---- averaging
    public static readonly ValueSetting<int> SwaStart = new("--swa-start", nameof(TrainingOptions.SwaStart), "Epoch (1-based) after which averaging begins; the schedules reach swa-lr by then.",
        (s, v) => Train(s, o => o with { SwaStart = v }), valueName: "EPOCH");
    public static readonly ValueSetting<double> SwaLr = new("--swa-lr", nameof(TrainingOptions.SwaLr), "Learning rate during averaging (cyclic: the top of each cycle).",
        (s, v) => Train(s, o => o with { SwaLr = v }));
    public static readonly ValueSetting<double> SwaLrMin = new("--swa-lr-min", nameof(TrainingOptions.SwaLrMin), "Cyclic schedule: the bottom of each cycle (default swa-lr/10).",
        (s, v) => Train(s, o => o with { SwaLrMin = v }));
    public static readonly ValueSetting<int> Cycle = new("--cycle", nameof(TrainingOptions.Cycle), "Cyclic schedule: cycle length in epochs; SWA averages at each cycle end.",
        (s, v) => Train(s, o => o with { Cycle = v }), valueName: "EPOCHS");
    public static readonly ValueSetting<int> AnnealEpochs = new("--anneal-epochs", nameof(TrainingOptions.AnnealEpochs), "swalr: epochs to anneal to swa-lr.",
        (s, v) => Train(s, o => o with { AnnealEpochs = v }), valueName: "EPOCHS");
    public static readonly ChoiceSetting<AnnealStrategy> Anneal = new("--anneal", nameof(TrainingOptions.Anneal), "swalr: cos or linear.",
        [("cos", AnnealStrategy.Cos), ("linear", AnnealStrategy.Linear)], (s, v) => Train(s, o => o with { Anneal = v }));
    public static readonly ChoiceSetting<AveragingKind> Average = new("--average", nameof(TrainingOptions.Average),
        "swa (equal-weight running mean), ema, swag (SWA plus a Gaussian around it: adds a Bayesian-model-average row, calibration.png), or lawa (the mean of the last --lawa-k averaged models).",
        [("swa", AveragingKind.Swa), ("ema", AveragingKind.Ema), ("swag", AveragingKind.Swag), ("lawa", AveragingKind.Lawa)], (s, v) => Train(s, o => o with { Average = v }));
    public static readonly ValueSetting<int> SwagRank = new("--swag-rank", nameof(TrainingOptions.SwagRank), "SWAG: deviation columns kept (0: diagonal only).",
        (s, v) => Train(s, o => o with { SwagRank = v }), valueName: "K");
    public static readonly ValueSetting<int> SwagSamples = new("--swag-samples", nameof(TrainingOptions.SwagSamples), "SWAG: weight samples in the final Bayesian model average.",
        (s, v) => Train(s, o => o with { SwagSamples = v }), resumeMayChange: true, valueName: "N");
    public static readonly ValueSetting<double> SwagScale = new("--swag-scale", nameof(TrainingOptions.SwagScale), "SWAG: scale of the sampled covariance (0.5 is the paper's).",
        (s, v) => Train(s, o => o with { SwagScale = v }), resumeMayChange: true);
    public static readonly ValueSetting<int> LawaK = new("--lawa-k", nameof(TrainingOptions.LawaK), "LAWA: how many of the latest averaged models make the average.",
        (s, v) => Train(s, o => o with { LawaK = v }), valueName: "K");
    public static readonly ValueSetting<double> EmaDecay = new("--ema-decay", nameof(TrainingOptions.EmaDecay), "EMA decay (with --average ema; averaged every step).",
        (s, v) => Train(s, o => o with { EmaDecay = v }));
    public static readonly SwitchSetting EmaWarmup = new("--ema-warmup", nameof(TrainingOptions.EmaWarmup),
        "EMA: ramp the decay up as min(decay, (1+n)/(10+n)) after n updates, so the average forgets the first, untrained models quickly.",
        s => Train(s, o => o with { EmaWarmup = true }));
    public static readonly ValueSetting<int> AverageEverySteps = new("--average-every-steps", nameof(TrainingOptions.AverageEverySteps), "Average every k steps instead of per epoch/cycle.",
        (s, v) => Train(s, o => o with { AverageEverySteps = v }), valueName: "K");
    public static readonly ChoiceSetting<BatchNormRecomputeMode?> BnRecompute = new("--bn-recompute", nameof(TrainingOptions.BnRecompute),
        "How the averaged model's BN statistics are recomputed over the training data: exact (population statistics), sample-weighted (SWA reference code), " +
        "equal-batches (PyTorch update_bn); or none: keep statistics averaged along with the weights.",
        [("exact", BatchNormRecomputeMode.Exact), ("sample-weighted", BatchNormRecomputeMode.SampleWeighted), ("equal-batches", BatchNormRecomputeMode.EqualBatches), ("none", null)],
        (s, v) => Train(s, o => o with { BnRecompute = v }), oldFlags: "--bn-update");
    public static readonly SwitchSetting NoEnsemble = new("--no-ensemble", nameof(TrainingOptions.Ensemble), "Skip the prediction-ensemble baseline.",
        s => Train(s, o => o with { Ensemble = false }));

    public static readonly SwitchSetting SaveEpochWeights = new("--save-epoch-weights", nameof(TrainingOptions.SaveEpochWeights),
        "Keep each epoch's SGD weights in the run folder (epochs/epoch-NNNN.safetensors), e.g. for `cudaswa average`.",
        s => Train(s, o => o with { SaveEpochWeights = true }), resumeMayChange: true);

    // ---- evaluation, data order, data-parallel runs
    public static readonly ValueSetting<int> EvalEvery = new("--eval-every", nameof(TrainingOptions.EvalEvery), "Evaluate SGD and SWA models every k epochs (always after the last).",
        (s, v) => Train(s, o => o with { EvalEvery = v }), resumeMayChange: true, valueName: "K");
    public static readonly TextSetting EvalAt = new("--eval-at", nameof(TrainingOptions.EvaluateAt), "Also evaluate after these epochs (comma-separated, from 1), e.g. the budgets of an experiment.",
        (s, v) => Train(s, o => o with { EvaluateAt = ParseEpochs(v, "--eval-at") }), resumeMayChange: true, valueName: "EPOCHS");
    public static readonly ValueSetting<ulong> Seed = new("--seed", nameof(TrainingOptions.Seed), "Seed for initialisation, batch order, augmentation and dropout.",
        (s, v) => Train(s, o => o with { Seed = v }));
    public static readonly ChoiceSetting<PaddingMode> Padding = new("--padding", nameof(TrainingOptions.Padding), "Augmentation padding: zero (paper) or reflect (fastai).",
        [("zero", PaddingMode.Zero), ("reflect", PaddingMode.Reflect)], (s, v) => Train(s, o => o with { Padding = v }));
    public static readonly ValueSetting<int> SwapPhase2 = new("--swap-phase2", nameof(TrainingOptions.SwapPhase2),
        "SWAP (with mpiexec -n N, N >= 2): data-parallel with the whole batch up to this epoch, then each rank alone with batch/N and its own data order, then the ranks' weights averaged and BN recomputed. Implies --sgd-only.",
        (s, v) => Train(s, o => o with { SwapPhase2 = v, SgdOnly = true }), valueName: "EPOCH");
    public static readonly SwitchSetting SyncBn = new("--sync-bn", nameof(TrainingOptions.SyncBatchNorm),
        "Data-parallel (mpiexec -n N): every BN layer normalises with the whole batch's statistics over all ranks (synchronised BN) instead of its rank's shard; N ranks then train as one process would.",
        s => Train(s, o => o with { SyncBatchNorm = true }));

    /// <summary>Every setting, in the order `train --help` lists them.</summary>
    public static readonly IReadOnlyList<Setting> All =
    [
        SgdOnly, Model, Dataset, Data, Epochs, Batch, Lr, Momentum, Wd, Nesterov, Schedule, SwaStart, SwaLr, SwaLrMin, Cycle, AnnealEpochs, Anneal,
        Average, SwagRank, SwagSamples, SwagScale, LawaK, EmaDecay, EmaWarmup, AverageEverySteps, BnRecompute, EvalEvery, EvalAt, Device, Tf32, Seed, Padding,
        TrainSubset, TestSubset, SyntheticTrain, SyntheticTest, NoEnsemble, SaveEpochWeights, SwapPhase2, SyncBn,
    ];

    /// <summary>
    /// Adds each training setting's value in <paramref name="defaults"/> (what `train` runs when the
    /// flag is not given: the quick preset) to its help, read from the engine's options — so no
    /// default is written here twice.
    /// </summary>
    public static void ShowDefaults(RunSettings defaults)
    {
        var training = defaults.Training.ToJson();
        foreach (var s in All.Where(s => s.IsEngineOption)) s.ShowDefault(training[s.SavedName]);
    }

    /// <summary>The flag of each engine option, by property name (for translating the engine's validation messages).</summary>
    public static readonly IReadOnlyDictionary<string, string> FlagOfProperty =
        All.Where(s => s.IsEngineOption).ToDictionary(s => s.Property, s => s.Flag, StringComparer.Ordinal);

    /// <summary>The flag of each saved setting, by its state.json name (for resume messages).</summary>
    public static readonly IReadOnlyDictionary<string, string> FlagOfSavedName = All.ToDictionary(s => s.SavedName, s => s.Flag, StringComparer.Ordinal);

    /// <summary>The state.json names of the settings a resume may change.</summary>
    public static readonly IReadOnlySet<string> ResumeMayChange = All.Where(s => s.ResumeMayChange).Select(s => s.SavedName).ToHashSet(StringComparer.Ordinal);

    /// <summary><paramref name="settings"/> (a preset's or a saved run's) with every setting the command line gives.</summary>
    public static RunSettings ApplyGiven(RunSettings settings, ParseResult parse)
    {
        foreach (var s in All) settings = s.Apply(parse, settings);
        return settings;
    }

    /// <summary><paramref name="settings"/> with the values the command line gives for <paramref name="rows"/> (a command that takes some of the settings).</summary>
    public static RunSettings Apply(ParseResult parse, RunSettings settings, params Setting[] rows)
    {
        foreach (var s in rows) settings = s.Apply(parse, settings);
        return settings;
    }

    /// <summary>A comma-separated list of epochs (from 1), with an error naming <paramref name="option"/>.</summary>
    public static int[] ParseEpochs(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var epochs = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out epochs[i]) || epochs[i] < 1)
                throw new OptionException($"{option}: '{parts[i]}' is not an epoch number (1, 2, ...); expected a comma-separated list such as 150,188,225.");
        if (epochs.Length == 0) throw new OptionException($"{option}: no epochs given; expected a comma-separated list such as 150,188,225.");
        return epochs;
    }
}
