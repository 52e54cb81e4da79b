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
public sealed class Trainer : IDisposable
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
    private Distributed.Collective _collective = Distributed.Collective.Single;
    /// <summary>SWAP's phase-2 loader: this rank's small batches in a data order of its own (null before DistributeOver or without SWAP).</summary>
    private BatchLoader? _swapLoader;
    private Distributed.SyncBatchNorm? _syncBatchNorm;
    /// <summary>The salt of SWAP's phase-2 data order: seed ^ (salt + rank).</summary>
    private const ulong SwapSeedSalt = 0x5A4A5000UL;

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
        _bnPass = new BatchNormRecomputePass(options.BnUpdate == BatchNormRecomputeMode.None ? BatchNormRecomputeMode.Exact : options.BnUpdate,
            options.BatchSize, options.Padding, options.Seed, EpochKey: 0);
        _bnLoader = _bnPass.CreateLoader(_train);
        _net = builder.Build(backend, options.BatchSize, options.Seed);
        _sgd = new Sgd(_net, (float)options.Momentum, (float)options.WeightDecay, options.Nesterov);
        _step = new TrainingStep(_net, _sgd);
        _evaluator = new Evaluator(_net);
        _schedule = options.CreateSchedule();
        if (options.Averaging)
        {
            // Without a BN recompute the averaged model needs statistics from somewhere: average them too.
            _averager = new WeightAverager(_net, new AveragingOptions { Kind = options.Average, EmaDecay = options.EmaDecay, SwagRank = options.SwagRank,
                AverageBatchNormStatistics = options.BnUpdate == BatchNormRecomputeMode.None });
            _averaging = options.CreateAveragingSchedule(_trainLoader.BatchCount);
            _snapshots = AveragingSchedule.Epochs(options.SwaStart!.Value, options.Schedule == ScheduleKind.Cyclic ? options.Cycle : 1);
            if (options.Ensemble) _ensemble = new PredictionEnsemble(_net, _testLoader);
        }
        DataFingerprint = Fingerprint(train, test);
        _legacyFingerprint = () => LegacyFingerprint(train, test);
        _state = new TrainingState { Options = options, Device = backend.Description, DataFingerprint = DataFingerprint };
    }

    /// <summary>
    /// Sizes and an xxHash128 of every label and every pixel of both splits (after subsets), so a
    /// resume on data that changed in any byte is refused. About 10 GB/s: tens of milliseconds for
    /// CIFAR, next to seconds or minutes per epoch.
    /// </summary>
    internal static string Fingerprint(ImageDataset train, ImageDataset test)
    {
        var hash = new System.IO.Hashing.XxHash128();
        foreach (var d in new[] { train, test })
        {
            hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(d.Labels.AsSpan()));
            hash.Append(d.Images);
        }
        return $"{FingerprintVersion}{train.Count}+{test.Count}:{Convert.ToHexString(hash.GetCurrentHash()).ToLowerInvariant()}";
    }

    private const string FingerprintVersion = "xxh128:";

    /// <summary>The fingerprint runs saved before every byte was hashed (labels and the first 64 KiB of pixels, FNV-1a).</summary>
    private static string LegacyFingerprint(ImageDataset train, ImageDataset test)
    {
        ulong h = 14695981039346656037UL;
        void Mix(ReadOnlySpan<byte> bytes) { foreach (byte b in bytes) h = (h ^ b) * 1099511628211UL; }
        foreach (var d in new[] { train, test })
        {
            Mix(System.Runtime.InteropServices.MemoryMarshal.AsBytes(d.Labels.AsSpan()));
            Mix(d.Images.AsSpan(0, Math.Min(d.Images.Length, 1 << 16)));
        }
        return $"{train.Count}+{test.Count}:{h:x16}";
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
        yield return $"model {_net.ModelName}: {_net.ParameterCount:N0} parameters, batch {_o.BatchSize}, activations {_net.ActivationBytes / 1048576.0:F0} MiB";
        yield return $"data: {_train.Count:N0} train / {_test.Count:N0} test images ({_train.Source.Name}), {_trainLoader.BatchCount} batches per epoch";
        yield return $"optimizer: SGD lr {_o.Lr:g4}, momentum {_o.Momentum:g3}{(_o.Nesterov ? " (Nesterov)" : "")}, weight decay {_o.WeightDecay:g3}; schedule {_schedule.Describe()}";
        if (_averager is not null)
            yield return $"averaging: {_o.Average.ToString().ToUpperInvariant()}{(_o.Average == AveragingKind.Ema ? $" decay {_o.EmaDecay}" : "")}" +
                         (_o.Average == AveragingKind.Swag ? $" (rank {_o.SwagRank}, {_o.SwagSamples} samples of scale {_o.SwagScale:g3} in the final Bayesian model average)" : "") + $", {_averaging!.Describe()}; " +
                         (_o.BnUpdate == BatchNormRecomputeMode.None ? "no BN recompute" : $"BN recompute: {_o.BnUpdate}") + (_ensemble is not null ? "; prediction ensemble of the averaged snapshots" : "");
        else if (_o.SwapPhase2 is int swap)
            yield return $"SWAP: epochs 1-{swap} data-parallel with the whole batch of {_o.BatchSize}, epochs {swap + 1}-{_o.Epochs} each rank alone with batch {_o.BatchSize} / ranks " +
                         "and its own data order, then the ranks' weights averaged (one all-reduce) and BN recomputed";
        else
            yield return "averaging: none (SGD only)";
    }

    /// <summary>Continues from a saved run folder (after construction, before <see cref="Run"/>).</summary>
    public void Resume(string runDir, TrainingState state)
    {
        string current = state.DataFingerprint.StartsWith(FingerprintVersion, StringComparison.Ordinal) ? DataFingerprint : _legacyFingerprint();
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
        Checkpoint.Restore(runDir, state, _net, _sgd, _averager, _ensemble);
        _state = state with { Options = _o, Device = Backend.Description, HostSettings = HostSettings ?? state.HostSettings };
        HostSettings = _state.HostSettings;
        _elapsedBefore = state.ElapsedSeconds;
    }

    /// <summary>
    /// Trains data-parallel over the ranks of <paramref name="collective"/> (after construction and
    /// any <see cref="Resume"/>, before the first epoch). Every rank builds the same trainer (same
    /// options, seed and data) and takes its shard of each global batch of BatchSize samples; the
    /// gradient arena is summed over the ranks in one call per step, so every rank takes the same
    /// step and the weights (and the SWA average, which needs no exchange) stay identical. BN
    /// statistics are per rank while training (as PyTorch's DDP), or the whole batch's with
    /// <see cref="TrainingOptions.SyncBatchNorm"/>; evaluations and the SWA model's BN
    /// recompute see the whole data on every rank. Ranks agree on stopping every step (Ctrl-C,
    /// SIGTERM) and on divergence at the end of each epoch (the loss sums are reduced then). Only
    /// the rank built with a run folder (rank 0) writes. Throws when
    /// the ranks do not start from the same weights and position, or when a resumed run was
    /// trained on another number of ranks.
    /// </summary>
    public void DistributeOver(Distributed.Collective collective)
    {
        ArgumentNullException.ThrowIfNull(collective);
        if (_clock is not null) throw new InvalidOperationException("DistributeOver must come before the first epoch runs.");
        if (collective.Size > _o.BatchSize)
            throw new ArgumentException($"{collective.Size} ranks cannot share batches of {_o.BatchSize} samples: give each rank at least one.", nameof(collective));
        if (_net.BatchNormLayers.Count > 0 && !(_o.SyncBatchNorm && collective.Size > 1))
        {
            // Batch statistics per rank need two samples: no rank may get exactly one of a full or of the last batch.
            foreach (int batch in new[] { 0, _trainLoader.BatchCount - 1 })
            {
                int size = _trainLoader.SizeOf(batch);
                for (int r = 0; r < collective.Size; r++)
                    if (BatchLoader.Shard(size, r, collective.Size).Count == 1)
                        throw new ArgumentException($"With {collective.Size} ranks, batch {batch + 1} of {size} samples gives rank {r} a single sample, and batch norm needs two: " +
                            $"choose a batch size (or training-set size) that leaves each rank 0 or at least 2 samples of every batch.", nameof(collective));
            }
        }
        if (_net.BatchNormLayers.Count > 0 && _o.SwapPhase2 is not null && _train.Count % SwapBatch(collective.Size) == 1)
            throw new ArgumentException($"SWAP's phase 2 trains each rank on batches of {SwapBatch(collective.Size)}, and {_train.Count} training images leave a last batch of a single sample, " +
                "which batch norm cannot use: change the batch size or the training-set size by one.", nameof(collective));
        bool sync = _o.SyncBatchNorm && collective.Size > 1 && _net.BatchNormLayers.Count > 0;
        if (sync && _trainLoader.SizeOf(_trainLoader.BatchCount - 1) == 1)
            throw new ArgumentException($"The last batch of each epoch holds a single sample ({_train.Count} training images in batches of {_o.BatchSize}), and batch norm needs two: " +
                "change the batch size or the training-set size by one.", nameof(collective));
        CheckRanks(collective.Size);
        collective.CheckSame(_state.GlobalStep, "The run's position (global step)");
        collective.CheckSame(sync ? 1 : 0, "Synchronised BN (SyncBatchNorm: 1 on, 0 off)");
        // (positions agree from here on, so every rank takes the same branches below)
        // SWAP's phase 2 gives every rank a model of its own: continuing there needs each rank's own checkpoint.
        bool inPhase2 = _state.StoppedInSwapPhase2;
        if (inPhase2 && collective.Any(_outDir is null))
            throw new InvalidOperationException($"This SWAP run stopped in phase 2 (epoch {_state.NextEpoch + 1}, after epoch {_o.SwapPhase2}): each rank's phase-2 model is its own, " +
                "and some rank has no run folder of its own to continue from (cudaswa train keeps one per rank under ranks/).");
        if (!inPhase2) collective.CheckSame(Checksum(Backend.ToArray(_net.Parameters.All)), "The model's weights");
        _collective = collective;
        _state = _state with { Ranks = collective.Size };
        _syncBatchNorm?.Dispose();
        _syncBatchNorm = sync ? new Distributed.SyncBatchNorm(_net, collective) : null;
        if (_o.SwapPhase2 is not null && collective.Size > 1)
            _swapLoader = new BatchLoader(_train, SwapBatch(collective.Size), shuffle: true, new AugmentSpec { Padding = _o.Padding },
                _o.Seed ^ (SwapSeedSalt + (ulong)collective.Rank));
    }

    /// <summary>SWAP's phase-2 batch on each of <paramref name="ranks"/> ranks: the batch's share, at least 2.</summary>
    private int SwapBatch(int ranks) => Math.Max(2, _o.BatchSize / ranks);

    /// <summary>The ranks this process trains with (<see cref="Distributed.Collective.Single"/> unless <see cref="DistributeOver"/>).</summary>
    public Distributed.Collective Collective => _collective;

    private void CheckRanks(int ranks)
    {
        if (_o.SwapPhase2 is not null && ranks < 2)
            throw new InvalidOperationException("SWAP (SwapPhase2) needs at least two ranks: its phase 2 trains one model per rank and phase 3 averages them.");
        bool started = _state.NextEpoch > 0 || _state.NextBatch > 0;
        if (started && _state.Ranks != ranks)
            throw new InvalidOperationException($"This run was trained on {_state.Ranks} rank(s) and continues only on {_state.Ranks} (here: {ranks}): " +
                "the shards of each batch and the per-rank BN statistics depend on the number of ranks.");
    }

    /// <summary>
    /// Once per epoch: the weights and the SWA average must be the same on every rank (the
    /// average needs no exchange because the weights are); one small all-reduce of checksums
    /// turns any drift into an error naming the epoch instead of a silently wrong average.
    /// </summary>
    private void CheckRanksAgree(int epoch)
    {
        _collective.CheckSame(Checksum(Backend.ToArray(_net.Parameters.All)), $"After epoch {epoch + 1}, the weights' checksum");
        if (_averager is not null && _averager.Count > 0)
            _collective.CheckSame(Checksum(Backend.ToArray(_averager.Parameters.All)), $"After epoch {epoch + 1}, the SWA average's checksum");
        if (_syncBatchNorm is not null) // synchronised BN gives every rank the same running statistics too
            _collective.CheckSame(Checksum(Backend.ToArray(_net.Buffers.All)), $"After epoch {epoch + 1}, the BN running statistics' checksum");
    }

    /// <summary>A position-weighted sum of the values (equal on every rank when the weights are).</summary>
    private static double Checksum(float[] values)
    {
        double sum = 0;
        for (int i = 0; i < values.Length; i++) sum += values[i] * (double)(1 + (i & 1023));
        return sum;
    }

    /// <summary>
    /// SWAP's phase 3: the ranks' phase-2 weights averaged with one all-reduce (each rank adds
    /// its weights / R), then BN statistics recomputed for the average with the batches shared
    /// between the ranks. Every rank ends with the same model.
    /// </summary>
    private void AverageRanks(int epoch)
    {
        _events.SwapAveraging?.Invoke(_net);
        _events.Phase?.Invoke(new PhaseProgress("swap-average", 0, 1));
        _collective.AllReduceSum(Backend, _net.Parameters.All, 1f / _collective.Size);
        var mode = _o.BnUpdate == BatchNormRecomputeMode.None ? BatchNormRecomputeMode.Exact : _o.BnUpdate;
        BatchNormRecompute.RunAcrossRanks(_net, _bnLoader, epoch, mode, (done, all) => _events.Phase?.Invoke(new PhaseProgress("bn-recompute", done, all)), _collective);
        _swapAveraged = true;
    }

    /// <summary>Whether SWAP's phase 3 has replaced the weights by the ranks' average (in this process).</summary>
    private bool _swapAveraged;

    /// <summary>Whether <paramref name="value"/> holds on any rank (this rank alone when not distributed).</summary>
    private bool AnyRank(bool value) => _collective.Size > 1 ? _collective.Any(value) : value;

    /// <summary>Every rank's own [loss sum, correct] so far, in rank order (null when not distributed).</summary>
    private float[]? RankStats()
    {
        if (_collective.Size == 1) return null;
        var (loss, correct) = _step.ReadStats();
        var all = new float[2 * _collective.Size];
        all[2 * _collective.Rank] = (float)loss;
        all[2 * _collective.Rank + 1] = (float)correct;
        _collective.AllReduceSum(all); // the other entries are zero: the sum gathers them exactly
        return all;
    }

    /// <summary>[loss sum, correct] of the epoch so far over every rank's shards.</summary>
    private (double LossSum, double Correct) GlobalStats()
    {
        var (loss, correct) = _step.ReadStats();
        if (_collective.Size == 1) return (loss, correct);
        Span<double> both = [loss, correct];
        _collective.AllReduceSumDouble(both);
        return (both[0], both[1]);
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
    /// Runs the next epoch (from its saved batch when resuming mid-epoch), then averages,
    /// evaluates and checkpoints. Returns Interrupted (after saving) when <paramref name="cancel"/>
    /// fires, Diverged when the loss is no longer finite.
    /// </summary>
    public RunOutcome RunEpoch(CancellationToken cancel)
    {
        if (IsComplete) throw new InvalidOperationException("The run is already complete.");
        if (_clock is null) CheckRanks(_collective.Size);
        _clock ??= Stopwatch.StartNew();
        bool parallel = _collective.Size > 1;
        int epoch = _state.NextEpoch;
        // SWAP's phase 2: this rank alone, small batches in its own order; no gradient exchange.
        bool phase2 = _o.SwapPhase2 is int swapFrom && epoch >= swapFrom && _swapLoader is not null;
        var loader = phase2 ? _swapLoader! : _trainLoader;
        int batches = loader.BatchCount;
        int first = _state.NextBatch;
        long globalStep = _state.GlobalStep;
        var epochClock = Stopwatch.StartNew();
        loader.BeginEpoch(epoch);
        // Mid-epoch: each rank continues its own saved partial sums (one process: the run's).
        if (first > 0 && parallel && _state.PartialRankSums is { } sums && sums.Count == 2 * _collective.Size)
            Backend.Upload<float>([sums[2 * _collective.Rank], sums[2 * _collective.Rank + 1]], _step.Stats);
        else if (first > 0 && !parallel) Backend.Upload<float>([_state.PartialLossSum, _state.PartialCorrect], _step.Stats);
        else _step.ResetStats();
        _events.EpochStarted?.Invoke(new EpochStart(epoch, first, batches));
        long passes = phase2 ? _collective.Size : 1; // in phase 2 every rank goes through the whole set
        long seen = first == 0 ? 0 : Math.Min(_train.Count * passes, (long)first * loader.BatchSize * passes);
        long seenAtStart = seen, seenHere = 0;
        double lr = 0;
        var lastReport = Stopwatch.StartNew();
        for (int i = first; i < batches; i++)
        {
            if (AnyRank(cancel.IsCancellationRequested))
            {
                var stats = GlobalStats();
                if (!double.IsFinite(stats.LossSum) || !Save(epoch, i, globalStep, (float)stats.LossSum, (float)stats.Correct, _state.History, RankStats()))
                    return Diverged(epoch, i);
                _events.Message?.Invoke($"Interrupted at epoch {epoch + 1}, batch {i}/{batches}; checkpoint saved" + (_outDir is null ? "" : $" in {_outDir}") + ".");
                return RunOutcome.Interrupted;
            }
            lr = _schedule.At(epoch, i, batches);
            // Dropout masks keyed by (step, rank): the ranks draw different masks (one process: by step alone).
            ulong key = (ulong)globalStep * (ulong)_collective.Size + (ulong)_collective.Rank;
            int b;
            if (parallel && !phase2)
            {
                b = _trainLoader.LoadShard(i, _collective.Rank, _collective.Size, _net.Input(_o.BatchSize), _step.Labels);
                _step.RunShard(b, _trainLoader.SizeOf(i), (float)lr, key, _collective, _syncBatchNorm);
            }
            else
            {
                b = loader.Load(i, _net.Input(_o.BatchSize), _step.Labels);
                _step.Run(b, (float)lr, key);
            }
            globalStep++;
            seen += phase2 ? b * passes : _trainLoader.SizeOf(i);
            seenHere += b;
            if (_averager is not null && _averaging!.AfterStep(globalStep)) _averager.Update();
            _events.BatchCompleted?.Invoke(new BatchDone(epoch, i));
            if (lastReport.Elapsed.TotalSeconds >= 0.25 || i == batches - 1)
            {
                lastReport.Restart();
                // This rank's shards only (the ranks read at different moments; the epoch's totals are summed below).
                var (lossSum, correct) = _step.ReadStats();
                if (!parallel && !double.IsFinite(lossSum)) return Diverged(epoch, i);
                long counted = parallel ? seenHere : seen;
                _events.Progress?.Invoke(new IterationProgress(epoch, i + 1, batches, lossSum / Math.Max(counted, 1), correct / Math.Max(counted, 1),
                    (seen - seenAtStart) / Math.Max(epochClock.Elapsed.TotalSeconds, 1e-9), lr));
            }
        }
        double trainSeconds = epochClock.Elapsed.TotalSeconds;
        var (trainLossSum, trainCorrect) = GlobalStats();
        if (!double.IsFinite(trainLossSum)) return Diverged(epoch, batches - 1);

        if (phase2 && epoch == _o.Epochs - 1) AverageRanks(epoch);
        if (_averager is not null && _averaging!.AfterEpoch(epoch)) _averager.Update();
        if (parallel && !phase2) CheckRanksAgree(epoch);
        if (_ensemble is not null && _snapshots!.AfterEpoch(epoch)) _ensemble.AddSnapshot();

        var record = new EpochRecord
        {
            Epoch = epoch + 1,
            LearningRate = lr,
            TrainLoss = trainLossSum / ((double)_train.Count * passes),
            TrainAccuracy = trainCorrect / ((double)_train.Count * passes),
            AveragedModels = _averager?.Count ?? 0,
            EnsembleSnapshots = _ensemble?.Count ?? 0,
            TrainSeconds = trainSeconds,
            ImagesPerSecond = (seen - seenAtStart) / Math.Max(trainSeconds, 1e-9),
        };
        bool last = epoch == _o.Epochs - 1;
        if ((epoch + 1) % _o.EvalEvery == 0 || last || (_o.EvaluateAt?.Contains(epoch + 1) ?? false)) record = Evaluate(record, epoch);
        record = record with { EpochSeconds = epochClock.Elapsed.TotalSeconds };
        if (AnyRank(record.TestLoss is double testLoss && !double.IsFinite(testLoss))) return Diverged(epoch, batches - 1);
        if (!Save(epoch + 1, 0, globalStep, 0, 0, [.. _state.History, record])) return Diverged(epoch, batches - 1);
        _events.EpochCompleted?.Invoke(record);
        return RunOutcome.Completed;
    }

    private RunOutcome Diverged(int epoch, int batch)
    {
        string keep = _state.CheckpointFolder.Length > 0 ? $"the last good checkpoint (epoch {_state.NextEpoch}, batch {_state.NextBatch}) is kept in {_outDir}" : "no checkpoint was written yet";
        _events.Message?.Invoke($"The loss, weights or BN statistics became NaN/Inf by epoch {epoch + 1}, batch {batch + 1}: training diverged and stopped; {keep}.");
        return RunOutcome.Diverged;
    }

    private EpochRecord Evaluate(EpochRecord record, int epoch)
    {
        _events.Phase?.Invoke(new PhaseProgress("test", 0, 1));
        var (testLoss, testAcc, calibration) = _evaluator.EvaluateCalibrated(_testLoader);
        record = record with { TestLoss = testLoss, TestAccuracy = testAcc, TestEce = calibration.Ece, TestBrier = calibration.Brier };
        CalibrationMetrics? swaCalibration = null;
        if (_averager is not null && _averager.Count > 0)
        {
            var clock = Stopwatch.StartNew();
            var swa = EvaluateAverageCalibrated(epoch, _collective);
            swaCalibration = swa.Calibration;
            record = record with { SwaTestLoss = swa.Loss, SwaTestAccuracy = swa.Accuracy, SwaTestEce = swa.Calibration.Ece, SwaTestBrier = swa.Calibration.Brier,
                BnRecomputeSeconds = clock.Elapsed.TotalSeconds };
        }
        _lastCalibration = (epoch + 1, calibration, swaCalibration);
        if (_ensemble is not null && _ensemble.Count > 0)
        {
            var (l, a) = _ensemble.Score();
            var c = _ensemble.Calibration();
            record = record with { EnsembleTestLoss = l, EnsembleTestAccuracy = a, EnsembleTestEce = c.Ece, EnsembleTestBrier = c.Brier };
        }
        return record;
    }

    /// <summary>Binds the averaged weights, recomputes their BN statistics (unless --no-bn-update) and evaluates them.</summary>
    public (double Loss, double Accuracy) EvaluateAverage(int epochKey)
    {
        var (loss, accuracy, _) = EvaluateAverageCalibrated(epochKey, Distributed.Collective.Single);
        return (loss, accuracy);
    }

    /// <summary>
    /// With <paramref name="collective"/> of several ranks (every rank calls it, inside training)
    /// the BN recompute's batches are shared between the ranks; the final results, which rank 0
    /// alone computes, pass <see cref="Distributed.Collective.Single"/>.
    /// </summary>
    private (double Loss, double Accuracy, CalibrationMetrics Calibration) EvaluateAverageCalibrated(int epochKey, Distributed.Collective collective)
    {
        if (_averager is null || _averager.Count == 0) throw new InvalidOperationException("Nothing has been averaged yet.");
        using (_averager.Bind())
        {
            if (_o.BnUpdate != BatchNormRecomputeMode.None)
            {
                BatchNormRecompute.RunAcrossRanks(_net, _bnLoader, epochKey, _o.BnUpdate, (done, all) => _events.Phase?.Invoke(new PhaseProgress("bn-recompute", done, all)), collective);
                _swaStatistics = $"recomputed ({_o.BnUpdate}) for the average of {_averager.Count} models after epoch {epochKey + 1}";
                _swaRecomputed = _bnPass with { EpochKey = epochKey };
            }
            else (_swaStatistics, _swaRecomputed) = ("averaged with the weights (no BN recompute)", null);
            _events.Phase?.Invoke(new PhaseProgress("swa-test", 0, 1));
            return _evaluator.EvaluateCalibrated(_testLoader);
        }
    }

    /// <summary>The seed of SWAG's sample draws: the run's seed with a salt of its own (so they differ from every other stream).</summary>
    internal static ulong SwagSampleSeed(TrainingOptions options) => options.Seed ^ 0x5357_4147_5341_4D50UL;

    /// <summary>
    /// SWAG's Bayesian model average: for each of <see cref="TrainingOptions.SwagSamples"/> samples
    /// of the Gaussian, bind the sample, recompute its BN statistics (keyed by the sample, so the
    /// result is reproducible) and fold its test-set probabilities into the running mean; the
    /// calibration of that mean. Reports phase "swag-sample" with samples done.
    /// </summary>
    public CalibrationMetrics SwagModelAverage()
    {
        if (_averager?.Swag is null || _averager.Count == 0) throw new InvalidOperationException("SWAG has collected nothing yet (needs Average = Swag and a model averaged).");
        int samples = _o.SwagSamples;
        using var bma = new PredictionEnsemble(_net, _testLoader);
        for (int s = 0; s < samples; s++)
        {
            int done = s;
            _events.Phase?.Invoke(new PhaseProgress("swag-sample", done, samples));
            using (_averager.BindSwagSample(s, SwagSampleSeed(_o), _o.SwagScale))
            {
                if (_o.BnUpdate != BatchNormRecomputeMode.None)
                    BatchNormRecompute.Run(_net, _bnLoader, _o.Epochs + 1 + s, _o.BnUpdate, (_, _) => _events.Phase?.Invoke(new PhaseProgress("swag-sample", done, samples)));
                bma.AddSnapshot();
            }
        }
        _events.Phase?.Invoke(new PhaseProgress("swag-sample", samples, samples));
        return bma.Calibration();
    }

    /// <summary>
    /// The final table: the SGD model, the averaged model, the prediction ensemble and (with SWAG)
    /// the Bayesian model average of SWAG samples on the test set, each with its calibration (NLL,
    /// ECE, Brier score, reliability bins). The SGD and averaged models' numbers come from the last
    /// epoch's evaluation when this process ran it, else from one test pass each (the averaged one
    /// with the BN statistics of its last evaluation); SWAG takes <see cref="TrainingOptions.SwagSamples"/>
    /// BN recomputes and test passes.
    /// </summary>
    public List<ResultRow> FinalResults()
    {
        var rows = new List<ResultRow>();
        string meanName = _o.Average == AveragingKind.Ema ? "EMA" : "SWA";
        var last = _state.History.LastOrDefault();
        // The last epoch's evaluation, when this process ran it, already holds everything (bins included).
        var evaluated = last is not null && _lastCalibration?.Epoch == last.Epoch && last.Epoch == _state.NextEpoch ? _lastCalibration : null;
        double sgdLoss, sgdAcc;
        CalibrationMetrics sgdCalibration;
        if (evaluated is { } e && last!.TestLoss is double recordedLoss) (sgdLoss, sgdAcc, sgdCalibration) = (recordedLoss, last.TestAccuracy!.Value, e.Sgd);
        else
        {
            _events.Phase?.Invoke(new PhaseProgress("test", 0, 1));
            (sgdLoss, sgdAcc, sgdCalibration) = _evaluator.EvaluateCalibrated(_testLoader);
        }
        rows.Add(_swapAveraged || (_o.SwapPhase2 is not null && _state.Ranks > 1 && IsComplete)
            ? new ResultRow("SWAP", sgdLoss, sgdAcc, $"average of {_state.Ranks} ranks' models trained alone after epoch {_o.SwapPhase2}, BN recomputed") { Calibration = sgdCalibration }
            : new ResultRow("SGD", sgdLoss, sgdAcc, $"final weights after {_state.NextEpoch} epochs") { Calibration = sgdCalibration });
        if (_averager is not null)
        {
            if (_averager.Count > 0)
            {
                (double Loss, double Accuracy, CalibrationMetrics Calibration) swa;
                if (evaluated?.Swa is { } swaCalibration && last!.SwaTestLoss is double swaLoss)
                    swa = (swaLoss, last.SwaTestAccuracy!.Value, swaCalibration);
                else if (last?.SwaTestLoss is not null)
                {
                    // The statistics of the last evaluation belong to this average: test it as it is.
                    _events.Phase?.Invoke(new PhaseProgress("swa-test", 0, 1));
                    using (_averager.Bind()) swa = _evaluator.EvaluateCalibrated(_testLoader);
                }
                else swa = EvaluateAverageCalibrated(_o.Epochs, Distributed.Collective.Single);
                rows.Add(new ResultRow(meanName, swa.Loss, swa.Accuracy,
                    $"average of {_averager.Count} {(_averager.Count == 1 ? "model" : "models")}" +
                    (_o.BnUpdate == BatchNormRecomputeMode.None ? ", BN not recomputed" : $", BN recomputed ({_o.BnUpdate})")) { Calibration = swa.Calibration });
            }
            else rows.Add(new ResultRow(meanName, null, null, "no model averaged yet"));
        }
        if (_ensemble is not null && _ensemble.Count > 0)
        {
            var (l, a) = _ensemble.Score();
            rows.Add(new ResultRow("Ensemble", l, a, $"mean prediction of {_ensemble.Count} snapshots (FGE-style)") { Calibration = _ensemble.Calibration() });
        }
        if (_averager?.Swag is { } swag)
        {
            if (swag.Count > 0)
            {
                var bma = SwagModelAverage();
                rows.Add(new ResultRow("SWAG", bma.Nll, bma.Accuracy,
                    $"Bayesian model average of {_o.SwagSamples} samples (rank {swag.Columns} of {swag.Rank}, scale {_o.SwagScale:g3})" +
                    (_o.BnUpdate == BatchNormRecomputeMode.None ? ", BN averaged" : $", BN recomputed ({_o.BnUpdate}) per sample")) { Calibration = bma });
            }
            else rows.Add(new ResultRow("SWAG", null, null, "no model collected yet"));
        }
        return rows;
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
        // Inside SWAP's phase 2 every rank's checkpoint is its own, and the one before stays too: a crash
        // between two ranks' saves leaves positions one save apart, and the ranks can then agree on the earlier one.
        bool ownCheckpointPerRank = _o.SwapPhase2 is not null && _collective.Size > 1 && _state.StoppedInSwapPhase2;
        _state = Checkpoint.Save(_outDir, _state, _net, _sgd, _averager, _ensemble, _swaStatistics, keepPrevious: ownCheckpointPerRank, _swaRecomputed);
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
