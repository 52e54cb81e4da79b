using System.Diagnostics;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>
/// The training loop behind `cudaswa train`: per-iteration learning rate, SGD steps, averaging
/// (SWA or EMA) and prediction-ensemble snapshots on schedule, per-epoch evaluation of the SGD
/// model and of the averaged model after a BN recompute, a crash-safe checkpoint after every
/// epoch (and on cancellation, mid-epoch), and a stop with a clear message when the loss turns
/// NaN/Inf (the last good checkpoint is kept). Everything random is keyed by (seed, epoch,
/// batch/sample/step), so a resumed run continues exactly as an uninterrupted one would.
/// </summary>
public sealed partial class Trainer : IDisposable
{
    private readonly TrainingOptions _o;
    private readonly TrainerEvents _events;
    private readonly DeviceDataset _train, _test;
    private readonly BatchLoader _trainLoader, _testLoader, _bnLoader;
    private readonly Network _net;
    private readonly Sgd _sgd;
    private readonly TrainingStep _step;
    private readonly Evaluator _evaluator;
    private readonly WeightAverager? _averager;
    private readonly PredictionEnsemble? _ensemble;
    private readonly LearningRateSchedule _schedule;
    private readonly AveragingSchedule? _averaging;
    private readonly AveragingSchedule? _snapshots;
    private readonly string? _outDir;
    private TrainingState _state;
    private Stopwatch? _clock;
    private double _elapsedBefore;
    private string _swaStatistics = "not recomputed yet";
    private readonly BatchNormRecomputePass _bnPass;
    // The recompute that gave the SWA model its current BN statistics (recorded in swa.safetensors); null: none yet.
    private BatchNormRecomputePass? _swaRecomputed;
    /// <summary>The full calibration (with bins) of the last evaluation in this process, for the final table.</summary>
    private (int Epoch, CalibrationMetrics Sgd, CalibrationMetrics? Swa)? _lastCalibration;
    private readonly Func<string> _legacyFingerprint;

    /// <summary>
    /// Sets up a run of the <see cref="ModelZoo"/> model that <see cref="TrainingOptions.Model"/>
    /// names, with <paramref name="options"/> (validated here) on <paramref name="backend"/>: uploads
    /// both datasets and builds the model, optimizer, averager and ensemble. Checkpoints go to
    /// <paramref name="outDir"/> (none when null); <paramref name="events"/> receives progress.
    /// </summary>
    public Trainer(TrainingOptions options, Backend backend, ImageDataset train, ImageDataset test, string? outDir, TrainerEvents? events = null)
        : this(options, null, backend, train, test, outDir, events, custom: false)
    {
    }

    /// <summary>
    /// A trainer for a network of the caller's own: <paramref name="describeModel"/> gets the
    /// number of classes and describes the network; its <see cref="NetworkBuilder.ModelName"/>
    /// must equal <see cref="TrainingOptions.Model"/>, the name checkpoints record and a resume checks.
    /// </summary>
    public static Trainer ForNetwork(TrainingOptions options, Func<int, NetworkBuilder> describeModel, Backend backend, ImageDataset train, ImageDataset test, string? outDir, TrainerEvents? events = null) =>
        new(options, describeModel ?? throw new ArgumentNullException(nameof(describeModel)), backend, train, test, outDir, events, custom: true);

    private Trainer(TrainingOptions options, Func<int, NetworkBuilder>? describeModel, Backend backend, ImageDataset train, ImageDataset test, string? outDir, TrainerEvents? events, bool custom)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        options.Validate(zooModel: !custom);
        var builder = describeModel is null ? ModelZoo.Describe(options.Model, train.NumClasses) : describeModel(train.NumClasses);
        if (custom && !string.Equals(builder.ModelName, options.Model, StringComparison.Ordinal))
            throw new ArgumentException($"Model is '{options.Model}' but the network describes itself as '{builder.ModelName}'; " +
                "give both the same name (checkpoints record it and a resume checks it).", nameof(TrainingOptions.Model));
        // Refused before anything is allocated when it cannot fit (the estimate and its accuracy: MemoryEstimate).
        var deviceMemory = backend.DeviceMemory();
        MemoryEstimate = MemoryEstimate.For(builder, options, train, test, deviceIsHost: deviceMemory is null);
        MemoryEstimate.Check(deviceMemory?.Free, MemoryEstimate.HostAvailable(), backend.Description);
        _o = options;
        _events = events ?? new TrainerEvents();
        _outDir = outDir;
        Backend = backend;
        if (test.NumClasses != train.NumClasses)
            throw new ArgumentException($"The test set has {test.NumClasses} classes, the training set {train.NumClasses}.", nameof(test));
        var augment = new AugmentSpec { Padding = options.Padding };
        _train = new DeviceDataset(train, backend);
        _test = new DeviceDataset(test, backend);
        _trainLoader = new BatchLoader(_train, options.BatchSize, shuffle: true, augment, options.Seed);
        _testLoader = new BatchLoader(_test, options.BatchSize, shuffle: false, augment.ForEvaluation(), options.Seed);
        // BN recompute sees the training data as training does (augmented), like the SWA reference code.
        _bnPass = options.BnRecomputePass(epochKey: 0);
        _bnLoader = _bnPass.CreateLoader(_train);
        _net = builder.Build(backend, options.BatchSize, options.Seed);
        _sgd = new Sgd(_net, (float)options.Momentum, (float)options.WeightDecay, options.Nesterov);
        _step = new TrainingStep(_net, _sgd);
        _evaluator = new Evaluator(_net);
        _schedule = options.CreateSchedule();
        if (options.Averaging)
        {
            // Without a BN recompute the averaged model needs statistics from somewhere: average them too.
            _averager = new WeightAverager(_net, options.CreateAveragingOptions());
            _averaging = options.CreateAveragingSchedule(_trainLoader.BatchCount);
            _snapshots = AveragingSchedule.Epochs(options.SwaStart!.Value, options.Schedule == ScheduleKind.Cyclic ? options.Cycle : 1);
            if (options.Ensemble) _ensemble = new PredictionEnsemble(_net, _testLoader);
        }
        DataFingerprint = DatasetFingerprint.Compute(train, test);
        _legacyFingerprint = () => DatasetFingerprint.Legacy(train, test);
        _state = new TrainingState { Options = options, Device = backend.Description, DataFingerprint = DataFingerprint };
    }


    /// <summary>Sizes and a hash of every label and pixel of both splits, saved in the state so that a resume on other data is refused.</summary>
    public string DataFingerprint { get; }

    /// <summary>
    /// Settings of the application that runs the trainer (data source, device, ...), saved with
    /// every checkpoint and restored by <see cref="Resume"/>; the trainer does not read them.
    /// </summary>
    public System.Text.Json.Nodes.JsonObject? HostSettings { get; set; }

    /// <summary>The backend the run trains on.</summary>
    public Backend Backend { get; }
    /// <summary>The model being trained.</summary>
    public Network Network => _net;
    /// <summary>The weight averager; null when averaging is off.</summary>
    public WeightAverager? Averager => _averager;
    /// <summary>Where the run stands: position, counters and metrics as of the last epoch end or interruption.</summary>
    public TrainingState State => _state;
    /// <summary>Training batches per epoch (the last may be smaller).</summary>
    public int BatchesPerEpoch => _trainLoader.BatchCount;

    /// <summary>Describes the setup in a few lines (for the console and train.log).</summary>
    public IEnumerable<string> Describe()
    {
        yield return $"model {_net.ModelName}: {_net.ParameterCount:N0} parameters, batch {_o.BatchSize}, activations {_net.ActivationBytes / 1048576.0:F0} MiB; " +
                     $"memory estimated {MemoryEstimate.DeviceBytes / 1048576.0:F0} MiB on {Backend.Name}, {MemoryEstimate.HostBytes / 1048576.0:F0} MiB on the host";
        yield return $"data: {_train.Count:N0} train / {_test.Count:N0} test images ({_train.Source.Name}), {_trainLoader.BatchCount} batches per epoch";
        yield return $"optimizer: SGD lr {_o.Lr:g4}, momentum {_o.Momentum:g3}{(_o.Nesterov ? " (Nesterov)" : "")}, weight decay {_o.WeightDecay:g3}; schedule {_schedule.Describe()}";
        if (_averager is not null)
            yield return $"averaging: {_averager.Method.Describe()}" +
                         (_averager.Swag is not null ? $", {_o.SwagSamples} samples of scale {_o.SwagScale:g3} in the final Bayesian model average" : "") + $", {_averaging!.Describe()}; " +
                         (_o.BnRecompute is null ? "no BN recompute (statistics averaged with the weights)" : $"BN recompute: {_bnPass.Mode}") + (_ensemble is not null ? "; prediction ensemble of the averaged snapshots" : "");
        else if (_o.SwapPhase2 is int swap)
            yield return $"SWAP: epochs 1-{swap} data-parallel with the whole batch of {_o.BatchSize}, epochs {swap + 1}-{_o.Epochs} each rank alone with batch {_o.BatchSize} / ranks " +
                         "and its own data order, then the ranks' weights averaged (one all-reduce) and BN recomputed";
        else
            yield return "averaging: none (SGD only)";
    }

    /// <summary>The memory this run was estimated to need before it allocated anything.</summary>
    public MemoryEstimate MemoryEstimate { get; }

    /// <summary>Continues from a saved run folder (after construction, before <see cref="Run"/>).</summary>
    public void Resume(string runDir, TrainingState state)
    {
        string current = DatasetFingerprint.IsCurrent(state.DataFingerprint) ? DataFingerprint : _legacyFingerprint();
        if (state.DataFingerprint.Length > 0 && state.DataFingerprint != current)
            throw new DataFormatException($"The run in {runDir} trained on other data ({state.DataFingerprint}) than this resume would use ({current}): " +
                "the same data files (every byte), dataset and subsets are needed.");
        if (!string.Equals(state.Options.Model, _o.Model, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"The run in {runDir} trains model '{state.Options.Model}'; this trainer trains '{_o.Model}'.", nameof(state));
        // SWAP's phase 2 has its own, smaller batches (batch / ranks) and so more of them per epoch.
        int batchesThen = state.Options.SwapPhase2 is int swap && state.NextEpoch >= swap && state.Ranks > 1
            ? (int)((_train.Count + SwapBatch(state.Ranks) - 1) / SwapBatch(state.Ranks))
            : _trainLoader.BatchCount;
        if (state.NextBatch >= batchesThen && state.NextBatch > 0)
            throw new DataFormatException($"The run in {runDir} stopped at batch {state.NextBatch}, beyond this data's {batchesThen} batches per epoch.");
        CheckPastLearningRates(state);
        Checkpoint.Restore(runDir, state, _net, _sgd, _averager, _ensemble);
        _state = state with { Options = _o, Device = Backend.Description, HostSettings = HostSettings ?? state.HostSettings };
        HostSettings = _state.HostSettings;
        _elapsedBefore = state.ElapsedSeconds;
    }


    /// <summary>
    /// A resume with another Epochs keeps the learning rate of every iteration already run: a
    /// schedule that spans the run's length (cosine, SGD's swa schedule) would be re-stretched under
    /// epochs that have used it, so such a change is refused (an <see cref="ArgumentException"/> for
    /// Epochs naming the first epoch that would change); one whose past rates stay (the swa
    /// schedule's averaging phase, cyclic, constant) may lengthen the run.
    /// </summary>
    private void CheckPastLearningRates(TrainingState state)
    {
        static string Rate(double lr) => lr.ToString("g6", System.Globalization.CultureInfo.InvariantCulture);
        if (state.Options.Epochs == _o.Epochs) return;
        LearningRateSchedule before = state.Options.CreateSchedule(), after = _o.CreateSchedule();
        for (int epoch = 0; epoch <= state.NextEpoch && epoch < state.Options.Epochs; epoch++)
        {
            int batches = state.Options.SwapPhase2 is int swap && epoch >= swap && state.Ranks > 1
                ? (int)((_train.Count + SwapBatch(state.Ranks) - 1) / SwapBatch(state.Ranks))
                : _trainLoader.BatchCount;
            int ran = epoch < state.NextEpoch ? batches : state.NextBatch;
            for (int i = 0; i < ran; i++)
            {
                double was = before.At(epoch, i, batches);
                double? now = epoch < _o.Epochs ? after.At(epoch, i, batches) : null;
                if (now == was) continue;
                throw new ArgumentException(
                    $"Epochs {state.Options.Epochs} -> {_o.Epochs} would change the learning rate of epoch {epoch + 1}, which this run has already trained " +
                    $"(iteration {i + 1}: {Rate(was)} -> {(now is double n ? Rate(n) : "not run at all")}), " +
                    $"because the {_o.Schedule.ToString().ToLowerInvariant()} schedule{(_o.SgdOnly ? " without averaging" : "")} spans the run's length. " +
                    $"Start a new run with Epochs {_o.Epochs} instead; only schedules whose rates for the epochs already run stay the same " +
                    "(the swa schedule with averaging, cyclic, constant) can be extended.", nameof(TrainingOptions.Epochs));
            }
        }
    }

    /// <summary>The next epoch to run (0-based); equals Epochs when the run is complete.</summary>
    public int NextEpoch => _state.NextEpoch;

    /// <summary>Whether every epoch of the options has run.</summary>
    public bool IsComplete => _state.NextEpoch >= _o.Epochs;

    /// <summary>Runs every remaining epoch.</summary>
    public RunOutcome Run(CancellationToken cancel)
    {
        while (!IsComplete)
        {
            var outcome = RunEpoch(cancel);
            if (outcome != RunOutcome.Completed) return outcome;
        }
        return RunOutcome.Completed;
    }


    /// <summary>
    /// Every weight, BN statistic and momentum value is finite — checked before each save, so a
    /// blown-up model never replaces the last good checkpoint (a finite training loss alone can hide Inf statistics).
    /// </summary>
    private bool StateIsFinite()
    {
        static bool Finite(float[] values)
        {
            foreach (float v in values) if (!float.IsFinite(v)) return false;
            return true;
        }
        return Finite(_net.OwnParameters.ToHost()) && Finite(_net.OwnBuffers.ToHost()) && Finite(_sgd.Velocity.ToHost());
    }

    /// <summary>Records the position and writes a checkpoint; false (nothing written) when the model is no longer finite.</summary>
    private bool Save(int nextEpoch, int nextBatch, long globalStep, float lossSum, float correct, List<EpochRecord> history, float[]? rankSums = null)
    {
        if (AnyRank(!StateIsFinite())) return false;
        double elapsed = _elapsedBefore + _clock!.Elapsed.TotalSeconds;
        _state = _state with
        {
            NextEpoch = nextEpoch,
            NextBatch = nextBatch,
            GlobalStep = globalStep,
            PartialLossSum = lossSum,
            PartialCorrect = correct,
            PartialRankSums = rankSums,
            AveragedModels = _averager?.Count ?? 0,
            EnsembleSnapshots = _ensemble?.Count ?? 0,
            History = [.. history],
            ElapsedSeconds = elapsed,
            HostSettings = HostSettings,
        };
        if (_outDir is null) return true;
        _events.Phase?.Invoke(new PhaseProgress("checkpoint", 0, 1));
        // Before the checkpoint commits the epoch: a stop in between repeats the epoch, which writes the same bits again.
        if (_o.SaveEpochWeights && nextBatch == 0 && nextEpoch > 0) Checkpoint.SaveEpochWeights(_outDir, _state, _net);
        // The checkpoint before stays too: a resume falls back to it when the newer one is damaged, and
        // inside SWAP's phase 2 (every rank's checkpoint its own) a crash between two ranks' saves leaves
        // positions one save apart, and the ranks can then agree on the earlier one.
        _state = Checkpoint.Save(_outDir, _state, _net, _sgd, _averager, _ensemble, _swaStatistics, keepPrevious: true, _swaRecomputed);
        return true;
    }

    /// <summary>Frees the model, optimizer, averager, ensemble, loaders and device datasets.</summary>
    public void Dispose()
    {
        _syncBatchNorm?.Dispose();
        _ensemble?.Dispose();
        _averager?.Dispose();
        _evaluator.Dispose();
        _step.Dispose();
        _sgd.Dispose();
        _net.Dispose();
        _trainLoader.Dispose();
        _testLoader.Dispose();
        _bnLoader.Dispose();
        _train.Dispose();
        _test.Dispose();
    }
}
