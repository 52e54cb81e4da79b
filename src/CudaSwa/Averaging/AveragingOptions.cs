namespace CudaSwa.Averaging;

/// <summary>How a running average of weights is kept.</summary>
public enum AveragingKind
{
    /// <summary>Stochastic Weight Averaging: the equal-weight mean of every model averaged so far, w_swa = (w_swa*n + w)/(n+1).</summary>
    Swa,
    /// <summary>Exponential moving average: w_ema = decay*w_ema + (1-decay)*w (the first update copies).</summary>
    Ema,
    /// <summary>
    /// SWA-Gaussian: the SWA mean plus the mean of squares and the last K deviations from the mean
    /// (<see cref="SwagMoments"/>), all updated in the same fused pass; samples of the Gaussian they
    /// define give a Bayesian model average.
    /// </summary>
    Swag,
    /// <summary>
    /// LAWA, latest weight averaging: the equal-weight mean of the last K averaged models only
    /// (<see cref="LatestWeights"/>, K = <see cref="AveragingOptions.LawaK"/>), a ring of K snapshots on the device.
    /// </summary>
    Lawa,
}

/// <summary>Where the averaged copy lives.</summary>
public enum AveragePlacement
{
    /// <summary>On the training device: the update is one fused kernel, no transfers.</summary>
    Device,
    /// <summary>In host memory: saves device memory; each update copies the current weights to the host once.</summary>
    Host,
}

/// <summary>Options of a <see cref="WeightAverager"/>.</summary>
public sealed record AveragingOptions
{
    /// <summary>SWA (equal-weight mean, the default) or EMA.</summary>
    public AveragingKind Kind { get; init; } = AveragingKind.Swa;

    /// <summary>EMA decay in (0, 1).</summary>
    public double EmaDecay { get; init; } = 0.999;

    /// <summary>
    /// EMA warm-up: after n updates the decay is min(<see cref="EmaDecay"/>, (1+n)/(10+n)), so the
    /// average forgets its first, untrained models quickly (decay 0.5 at the ninth update, 0.9 after 80).
    /// </summary>
    public bool EmaWarmup { get; init; }

    /// <summary>
    /// Also average BN running statistics. Off by default: SWA recomputes them for the averaged
    /// weights (<see cref="BatchNormRecompute"/>), since an average of statistics is not the
    /// statistics of the averaged network.
    /// </summary>
    public bool AverageBatchNormStatistics { get; init; }

    /// <summary>SWAG: deviation columns kept (K, default 20; 0 keeps the diagonal only).</summary>
    public int SwagRank { get; init; } = SwagMoments.DefaultRank;

    /// <summary>LAWA: snapshots averaged (the last K; default 5).</summary>
    public int LawaK { get; init; } = DefaultLawaK;

    /// <summary>The default of <see cref="LawaK"/>.</summary>
    public const int DefaultLawaK = 5;

    /// <summary>Where the averaged copy lives (on the device by default).</summary>
    public AveragePlacement Placement { get; init; } = AveragePlacement.Device;

    /// <summary>
    /// The weight of the current model in the update after <paramref name="averaged"/> models:
    /// 1/(n+1) for SWA, SWAG and LAWA, 1-decay for EMA (the warmed-up decay with <see cref="EmaWarmup"/>),
    /// 1 (a copy) for the first update of any.
    /// </summary>
    public float UpdateWeight(long averaged) => CreateMethod().UpdateWeight(averaged);

    /// <summary>The method component of <see cref="Kind"/>: the one place that maps a kind to its class.</summary>
    internal AveragingMethod CreateMethod() => Kind switch
    {
        AveragingKind.Swa => new SwaMethod(this),
        AveragingKind.Ema => new EmaMethod(this),
        AveragingKind.Swag => new SwagMethod(this),
        AveragingKind.Lawa => new LawaMethod(this),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), $"Unknown averaging kind {Kind}."),
    };

    /// <summary>
    /// Every problem of these options as (property, sentence): an EMA decay outside (0, 1), an EMA
    /// warm-up without EMA, a SWAG rank outside 0..1024, a LAWA K outside 1..<see cref="LatestWeights.MaxK"/>,
    /// LAWA with averaged BN statistics. The one statement of these ranges: <see cref="Training.TrainingOptions.Validate()"/> reports them too.
    /// </summary>
    public IEnumerable<(string Property, string Problem)> Problems()
    {
        if (Kind == AveragingKind.Ema && !(EmaDecay > 0 && EmaDecay < 1))
            yield return (nameof(EmaDecay), $"EmaDecay must be in (0, 1); got {EmaDecay}.");
        if (EmaWarmup && Kind != AveragingKind.Ema)
            yield return (nameof(EmaWarmup), $"EmaWarmup ramps up the decay of EMA averaging; this run averages with {Kind.ToString().ToUpperInvariant()}, which has no decay.");
        if (SwagRank < 0 || SwagRank > 1024)
            yield return (nameof(SwagRank), $"SwagRank must be in 0..1024; got {SwagRank}.");
        if (LawaK < 1 || LawaK > LatestWeights.MaxK)
            yield return (nameof(LawaK), $"LawaK must be in 1..{LatestWeights.MaxK}; got {LawaK}.");
        if (Kind == AveragingKind.Lawa && AverageBatchNormStatistics)
            yield return (nameof(AverageBatchNormStatistics), "LAWA averages the last K weights only; BN statistics averaged over every update would not belong to them: recompute them instead.");
    }

    /// <summary>
    /// Throws for the first of <see cref="Problems"/>: <see cref="ArgumentOutOfRangeException"/> for a
    /// value out of its range, <see cref="ArgumentException"/> for settings that do not go together.
    /// </summary>
    public void Validate()
    {
        foreach (var (property, problem) in Problems())
            throw property is nameof(EmaWarmup) or nameof(AverageBatchNormStatistics)
                ? new ArgumentException(problem, property)
                : new ArgumentOutOfRangeException(property, problem);
    }
}
