using System.Text.Json.Serialization;
using CudaSwa.Averaging;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>The learning-rate schedules a <see cref="Trainer"/> offers.</summary>
public enum ScheduleKind
{
    /// <summary>The SWA paper's piecewise-linear schedule (<see cref="SwaPaperSchedule"/>).</summary>
    Swa,
    /// <summary>Cosine annealing, then PyTorch's SWALR anneal to the SWA learning rate (<see cref="SwalrSchedule"/>).</summary>
    Swalr,
    /// <summary>The paper's cyclic schedule (Eq. 2) from the averaging start (<see cref="CyclicSchedule"/>).</summary>
    Cyclic,
    /// <summary>Cosine annealing over the whole run (<see cref="CosineSchedule"/>).</summary>
    Cosine,
    /// <summary>A constant learning rate (<see cref="ConstantSchedule"/>).</summary>
    Constant,
}

/// <summary>
/// Everything that defines how a <see cref="Trainer"/> trains: model, optimiser, schedule,
/// averaging, evaluation and seed. Where the data comes from and which device runs it are the
/// caller's business (the trainer takes datasets and a backend). Saved in state.json, so a resumed
/// run continues with exactly the same settings. Defaults are a short SWA run on a small ResNet.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>A model name known to <see cref="Models.ModelZoo"/> (e.g. resnet20, preresnet164, wrn28x10).</summary>
    public string Model { get; init; } = "resnet8";

    /// <summary>Training-time augmentation padding: zero (the SWA paper's) or reflect.</summary>
    public PaddingMode Padding { get; init; } = PaddingMode.Zero;

    /// <summary>Epochs to train.</summary>
    public int Epochs { get; init; } = 8;

    /// <summary>Samples per training step (and per evaluation and BN-recompute batch).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>The initial learning rate.</summary>
    public double Lr { get; init; } = 0.05;

    /// <summary>SGD momentum in [0, 1).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>L2 weight decay added to the gradient (PyTorch semantics).</summary>
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>Nesterov momentum.</summary>
    public bool Nesterov { get; init; }

    /// <summary>The learning-rate schedule.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<ScheduleKind>))]
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Swa;

    /// <summary>1-based epoch count after which averaging starts (the SWA reference code's swa_start).</summary>
    public int? SwaStart { get; init; } = 5;

    /// <summary>The learning rate during averaging (the cyclic schedule's top).</summary>
    public double? SwaLr { get; init; } = 0.01;

    /// <summary>The cyclic schedule's low end (alpha2); default <see cref="SwaLr"/> / 10. The cycle runs from SwaLr down to it.</summary>
    public double? SwaLrMin { get; init; }

    /// <summary>Cycle length in epochs (cyclic schedule; SWA then averages at each cycle end).</summary>
    public int Cycle { get; init; } = 1;

    /// <summary>SWALR: epochs to anneal to <see cref="SwaLr"/>.</summary>
    public int AnnealEpochs { get; init; } = 3;

    /// <summary>SWALR: the shape of the anneal.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<AnnealStrategy>))]
    public AnnealStrategy Anneal { get; init; } = AnnealStrategy.Cos;

    /// <summary>No averaging at all: the plain SGD baseline.</summary>
    public bool SgdOnly { get; init; }

    /// <summary>SWA (equal-weight mean), EMA, or SWAG (the SWA mean plus a Gaussian around it, evaluated as a Bayesian model average).</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<AveragingKind>))]
    public AveragingKind Average { get; init; } = AveragingKind.Swa;

    /// <summary>EMA decay in (0, 1).</summary>
    public double EmaDecay { get; init; } = 0.999;

    /// <summary>EMA warm-up: the decay ramps up as min(EmaDecay, (1+n)/(10+n)) after n updates (<see cref="AveragingOptions.EmaWarmup"/>).</summary>
    public bool EmaWarmup { get; init; }

    /// <summary>SWAG: deviation columns kept (K; 0 keeps the diagonal only).</summary>
    public int SwagRank { get; init; } = SwagMoments.DefaultRank;

    /// <summary>LAWA: the last K averaged models make the average (<see cref="AveragingOptions.LawaK"/>).</summary>
    public int LawaK { get; init; } = AveragingOptions.DefaultLawaK;

    /// <summary>SWAG: weight samples in the Bayesian model average of the final evaluation.</summary>
    public int SwagSamples { get; init; } = 30;

    /// <summary>SWAG: scale of the sampled covariance (0.5 gives the paper's 1/√2 factors).</summary>
    public double SwagScale { get; init; } = SwagMoments.DefaultScale;

    /// <summary>Average every k steps instead of per epoch/cycle (0: per epoch; EMA defaults to 1).</summary>
    public int AverageEverySteps { get; init; }

    /// <summary>
    /// How the averaged model gets its BN statistics before it is evaluated: recomputed over the
    /// training data in this mode (<see cref="BatchNormRecomputeMode.Exact"/> by default), or, when
    /// null, not recomputed: the averaged model keeps BN statistics averaged along with its weights.
    /// </summary>
    [JsonConverter(typeof(JsonStringEnumConverter<BatchNormRecomputeMode>))]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] // null (no recompute) must be written: absent means the default
    public BatchNormRecomputeMode? BnRecompute { get; init; } = BatchNormRecomputeMode.Exact;

    /// <summary>
    /// The BN recompute this run does for a model evaluated after epoch <paramref name="epochKey"/>
    /// (0-based): its mode (Exact where the averaged model keeps averaged statistics and a model
    /// still needs recomputed ones, as SWAP's average does), batch size, augmentation padding and
    /// seed. The one place a run's recompute is made: the trainer and the landscape use it.
    /// </summary>
    public BatchNormRecomputePass BnRecomputePass(int epochKey) =>
        new(BnRecompute ?? BatchNormRecomputeMode.Exact, BatchSize, Padding, Seed, epochKey);

    /// <summary>Evaluate every k epochs (always after the last).</summary>
    public int EvalEvery { get; init; } = 1;

    /// <summary>Also evaluate after these epochs (counted from 1), besides every <see cref="EvalEvery"/>-th and the last: e.g. an experiment's budget epochs.</summary>
    public IReadOnlyList<int>? EvaluateAt { get; init; }

    /// <summary>Keep the prediction-ensemble baseline of the averaged snapshots.</summary>
    public bool Ensemble { get; init; } = true;

    /// <summary>
    /// Keep each epoch's SGD weights (parameters and BN statistics) in the run folder as
    /// <see cref="Checkpoint.EpochWeightsFile"/>: the input of post-hoc averaging (<see cref="Averaging.PostHocAverage"/>).
    /// </summary>
    public bool SaveEpochWeights { get; init; }

    /// <summary>
    /// SWAP (Gupta, Serrano and DeCoste, ICLR 2020, "Stochastic Weight Averaging in Parallel"):
    /// data-parallel training with the whole batch up to this epoch (phase 1); from then on every
    /// rank trains alone with a batch of BatchSize / ranks samples and a data order of its own
    /// (phase 2); after the last epoch the ranks' weights are averaged with one all-reduce and the
    /// BN statistics recomputed (phase 3). Needs SgdOnly and at least two ranks; null: off.
    /// </summary>
    public int? SwapPhase2 { get; init; }

    /// <summary>
    /// Data-parallel training only: every BN layer normalises with the statistics of the whole
    /// global batch (all ranks' shards) instead of its rank's shard (synchronised BN), so R ranks
    /// train the network one process would with the whole batch, and the BN running statistics are
    /// the same on every rank. Costs two small exchanges per BN layer and step. Off (false): BN per
    /// rank, as PyTorch's DDP. No effect on one process or in SWAP's phase 2.
    /// </summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>Seed of initialisation, batch order, augmentation and dropout.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Whether the run averages (not <see cref="SgdOnly"/>).</summary>
    [JsonIgnore]
    public bool Averaging => !SgdOnly;

    /// <summary>The options as a snake_case JSON object, the form state.json keeps them in.</summary>
    public System.Text.Json.Nodes.JsonObject ToJson() =>
        (System.Text.Json.Nodes.JsonObject)System.Text.Json.JsonSerializer.SerializeToNode(this, TrainingJsonContext.Default.TrainingOptions)!;

    /// <summary>Options from the JSON form <see cref="ToJson"/> writes (or an earlier version's); missing properties keep their defaults.</summary>
    public static TrainingOptions FromJson(System.Text.Json.Nodes.JsonNode json)
    {
        if (json is System.Text.Json.Nodes.JsonObject o) json = Upgrade(o);
        return System.Text.Json.JsonSerializer.Deserialize(json, TrainingJsonContext.Default.TrainingOptions)
            ?? throw new Data.DataFormatException("The training options are empty (JSON null).");
    }

    /// <summary>
    /// Options JSON as this version reads it (a copy): every property the JSON lacks (an option
    /// added since it was written) at its default — the deserializer would leave it at zero —
    /// and earlier names in today's: the BN recompute was "bn_update", with "None" for no
    /// recompute, and before that a flag "no_bn_update".
    /// </summary>
    internal static System.Text.Json.Nodes.JsonObject Upgrade(System.Text.Json.Nodes.JsonObject options)
    {
        var given = (System.Text.Json.Nodes.JsonObject)options.DeepClone();
        if (!given.ContainsKey("bn_recompute") && (given.ContainsKey("bn_update") || given.ContainsKey("no_bn_update")))
        {
            string? mode = given["no_bn_update"]?.GetValue<bool>() == true ? null : given["bn_update"]?.GetValue<string>() ?? nameof(BatchNormRecomputeMode.Exact);
            given["bn_recompute"] = mode is null || mode == "None" ? null : mode;
        }
        given.Remove("bn_update");
        given.Remove("no_bn_update");
        var complete = new TrainingOptions().ToJson();
        foreach (var (name, value) in given) complete[name] = value?.DeepClone();
        return complete;
    }

    /// <summary>
    /// Checks every value; an <see cref="ArgumentException"/> whose ParamName is the offending
    /// property, and whose message names the properties involved.
    /// </summary>
    public void Validate() => Validate(zooModel: true);

    /// <param name="zooModel">Whether <see cref="Model"/> must name a <see cref="Models.ModelZoo"/> model
    /// (false when the caller supplies the network and <see cref="Model"/> only names it).</param>
    internal void Validate(bool zooModel)
    {
        static void Fail(string property, string problem) => throw new ArgumentException(problem, property);
        if (string.IsNullOrWhiteSpace(Model))
            Fail(nameof(Model), "Model must name the network (checkpoints record it).");
        if (zooModel && !Models.ModelZoo.Models.Any(m => string.Equals(m.Name, Model, StringComparison.OrdinalIgnoreCase)))
            Fail(nameof(Model), $"unknown model '{Model}'; known models: {string.Join(", ", Models.ModelZoo.Models.Select(m => m.Name))}.");
        if (Epochs < 1) Fail(nameof(Epochs), $"Epochs must be >= 1; got {Epochs}.");
        if (BatchSize < 2) Fail(nameof(BatchSize), $"BatchSize must be >= 2 (batch norm needs two samples); got {BatchSize}.");
        if (!(Lr > 0) || double.IsInfinity(Lr)) Fail(nameof(Lr), $"Lr must be a number > 0; got {Lr}.");
        if (!(Momentum >= 0 && (float)Momentum < 1)) Fail(nameof(Momentum), $"Momentum must be in [0, 1) (as a float32); got {Momentum}.");
        if (Nesterov && Momentum == 0) Fail(nameof(Nesterov), "Nesterov needs Momentum > 0.");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) Fail(nameof(WeightDecay), $"WeightDecay must be a finite number >= 0; got {WeightDecay}.");
        if (EvalEvery < 1) Fail(nameof(EvalEvery), $"EvalEvery must be >= 1; got {EvalEvery}.");
        if (SwapPhase2 is int swap)
        {
            if (swap < 1 || swap >= Epochs) Fail(nameof(SwapPhase2), $"SwapPhase2 must be in 1..{Epochs - 1} (phase 2 needs at least one epoch after it); got {swap}.");
            if (!SgdOnly) Fail(nameof(SwapPhase2), "SwapPhase2 averages the ranks' models at the end: it runs without SWA averaging (SgdOnly).");
        }
        if (EvaluateAt is not null && EvaluateAt.Any(e => e < 1)) Fail(nameof(EvaluateAt), $"EvaluateAt holds epochs counted from 1; got {string.Join(", ", EvaluateAt)}.");
        if (Cycle < 1) Fail(nameof(Cycle), $"Cycle must be >= 1 epoch; got {Cycle}.");
        if (AnnealEpochs < 0) Fail(nameof(AnnealEpochs), $"AnnealEpochs must be >= 0; got {AnnealEpochs}.");
        if (AverageEverySteps < 0) Fail(nameof(AverageEverySteps), $"AverageEverySteps must be >= 0; got {AverageEverySteps}.");
        // The averaging method's own settings (decay, warm-up, rank, K) are checked where they are declared.
        foreach (var (property, problem) in (CreateAveragingOptions() with { AverageBatchNormStatistics = false }).Problems()) Fail(property, problem);
        if (BnRecompute is { } recompute && !Enum.IsDefined(recompute)) Fail(nameof(BnRecompute), $"BnRecompute {recompute} is not a BN recompute mode.");
        if (Average == AveragingKind.Lawa && BnRecompute is null && !SgdOnly)
            Fail(nameof(BnRecompute), "LAWA averages only the last LawaK models, so BN statistics averaged over every update would not be theirs: LAWA needs a BnRecompute.");
        if (SwagSamples < 1 || SwagSamples > 10000) Fail(nameof(SwagSamples), $"SwagSamples must be in 1..10000; got {SwagSamples}.");
        if (!(SwagScale > 0) || double.IsInfinity(SwagScale)) Fail(nameof(SwagScale), $"SwagScale must be a finite number > 0; got {SwagScale}.");
        if (SwaLrMin is not null && !(SwaLrMin > 0 && SwaLrMin <= SwaLr)) Fail(nameof(SwaLrMin), $"SwaLrMin must be in (0, SwaLr]; got {SwaLrMin}.");
        if (SwaLr is double swaLr && (!(swaLr > 0) || !double.IsFinite(swaLr))) Fail(nameof(SwaLr), $"SwaLr must be a finite number > 0; got {swaLr}.");
        bool needsSwaStart = Averaging || Schedule is ScheduleKind.Swalr or ScheduleKind.Cyclic;
        if (needsSwaStart)
        {
            if (SwaStart is null) Fail(nameof(SwaStart), "SwaStart is required for averaging and for the swalr and cyclic schedules.");
            if (SwaStart < 1 || SwaStart > Epochs) Fail(nameof(SwaStart), $"SwaStart must be in 1..{Epochs} (Epochs); got {SwaStart}: give a SwaStart within the run, or SgdOnly for plain SGD without averaging.");
        }
        bool needsSwaLr = Schedule is ScheduleKind.Swalr or ScheduleKind.Cyclic || (Schedule == ScheduleKind.Swa && Averaging);
        if (needsSwaLr && !(SwaLr > 0)) Fail(nameof(SwaLr), $"SwaLr must be a number > 0 for the {Schedule.ToString().ToLowerInvariant()} schedule; got {SwaLr?.ToString() ?? "nothing"}.");
        try
        {
            CreateSchedule(); // the schedules check their own arguments too
        }
        catch (ArgumentException e)
        {
            Fail(nameof(Schedule), $"The {Schedule.ToString().ToLowerInvariant()} schedule: {e.Message}");
        }
    }

    /// <summary>The learning-rate schedule these options describe.</summary>
    public LearningRateSchedule CreateSchedule() => Schedule switch
    {
        ScheduleKind.Swa => Averaging ? new SwaPaperSchedule(Lr, Epochs, SwaStart, SwaLr) : new SwaPaperSchedule(Lr, Epochs),
        ScheduleKind.Swalr => new SwalrSchedule(Lr, Epochs, SwaStart!.Value, SwaLr!.Value, AnnealEpochs, Anneal),
        ScheduleKind.Cyclic => new CyclicSchedule(Lr, SwaStart!.Value, SwaLr!.Value, SwaLrMin ?? SwaLr.Value / 10, Cycle),
        ScheduleKind.Cosine => new CosineSchedule(Lr, Epochs),
        _ => new ConstantSchedule(Lr),
    };

    /// <summary>The options of the run's weight averager: its method's settings, and BN statistics averaged with the weights when they are not recomputed.</summary>
    public AveragingOptions CreateAveragingOptions() => new()
    {
        Kind = Average, EmaDecay = EmaDecay, EmaWarmup = EmaWarmup, SwagRank = SwagRank, LawaK = LawaK,
        AverageBatchNormStatistics = BnRecompute is null,
    };

    /// <summary>When to average: every k steps from the first step of epoch swa-start (EMA, by default: every step), else per epoch or cycle end.</summary>
    public AveragingSchedule CreateAveragingSchedule(int iterationsPerEpoch)
    {
        int steps = AverageEverySteps > 0 ? AverageEverySteps : CreateAveragingOptions().CreateMethod().DefaultEverySteps;
        if (steps > 0) return AveragingSchedule.Steps(steps, startStep: (long)(SwaStart!.Value - 1) * iterationsPerEpoch + 1);
        return AveragingSchedule.Epochs(SwaStart!.Value, Schedule == ScheduleKind.Cyclic ? Cycle : 1);
    }
}
