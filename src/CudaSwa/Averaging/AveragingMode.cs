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
    /// EMA warm-up: after n updates the decay is min(<see cref="EmaDecay"/>, (1+n)/(10+n)) — the
    /// num_updates form of TensorFlow's ExponentialMovingAverage, which timm's ModelEmaV2 users
    /// apply too — so the average forgets its first, untrained models quickly (decay 0.18 at the
    /// second update, 0.5 at the ninth, 0.9 after 80) instead of holding them for ~1/(1-decay) updates.
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
    /// 1/(n+1) for SWA, SWAG and LAWA (whose mean <see cref="LatestWeights"/> rebuilds), 1-decay for EMA (the warmed-up decay with <see cref="EmaWarmup"/>),
    /// 1 (a copy) for the first update of any.
    /// </summary>
    public float UpdateWeight(long averaged)
    {
        if (averaged == 0) return 1f;
        return Kind == AveragingKind.Ema ? (float)(1.0 - EmaDecayAfter(averaged)) : (float)(1.0 / (averaged + 1));
    }

    /// <summary>The EMA decay of the update after <paramref name="averaged"/> models: <see cref="EmaDecay"/>, or with <see cref="EmaWarmup"/> min(EmaDecay, (1+n)/(10+n)).</summary>
    public double EmaDecayAfter(long averaged) => EmaWarmup ? Math.Min(EmaDecay, (1.0 + averaged) / (10.0 + averaged)) : EmaDecay;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when an EMA decay lies outside (0, 1), a SWAG rank outside 0..1024 or a LAWA K outside 1..1000.</summary>
    public void Validate()
    {
        if (Kind == AveragingKind.Ema && !(EmaDecay > 0 && EmaDecay < 1))
            throw new ArgumentOutOfRangeException(nameof(EmaDecay), $"EMA decay must be in (0, 1); got {EmaDecay}.");
        if (Kind == AveragingKind.Swag && (SwagRank < 0 || SwagRank > 1024))
            throw new ArgumentOutOfRangeException(nameof(SwagRank), $"The SWAG rank must be in 0..1024; got {SwagRank}.");
        if (Kind == AveragingKind.Lawa && (LawaK < 1 || LawaK > LatestWeights.MaxK))
            throw new ArgumentOutOfRangeException(nameof(LawaK), $"LAWA keeps 1..{LatestWeights.MaxK} snapshots; got {LawaK}.");
        if (Kind == AveragingKind.Lawa && AverageBatchNormStatistics)
            throw new ArgumentException("LAWA averages the last K weights only; BN statistics averaged over every update would not belong to them: recompute them instead.", nameof(AverageBatchNormStatistics));
    }
}
