namespace CudaSwa.Averaging;

/// <summary>
/// EMA: w_ema = decay·w_ema + (1−decay)·w, the first update a copy. With
/// <see cref="AveragingOptions.EmaWarmup"/> the decay after n updates is min(decay, (1+n)/(10+n)) —
/// the num_updates form of TensorFlow's ExponentialMovingAverage, which timm's ModelEmaV2 users
/// apply too — so the average forgets its first, untrained models quickly (decay 0.18 at the
/// second update, 0.5 at the ninth, 0.9 after 80) instead of holding them for ~1/(1−decay) updates.
/// </summary>
internal sealed class EmaMethod(AveragingOptions options) : AveragingMethod(options)
{
    public override string Name => "EMA";

    /// <summary>EMA follows the weights step by step.</summary>
    public override int DefaultEverySteps => 1;

    /// <summary>The decay of the update after <paramref name="averaged"/> models.</summary>
    public double DecayAfter(long averaged) => Options.EmaWarmup ? Math.Min(Options.EmaDecay, (1.0 + averaged) / (10.0 + averaged)) : Options.EmaDecay;

    public override float UpdateWeight(long averaged) => averaged == 0 ? 1f : (float)(1.0 - DecayAfter(averaged));

    public override string Describe() => $"EMA decay {Options.EmaDecay}{(Options.EmaWarmup ? " with warm-up min(decay, (1+n)/(10+n))" : "")}";
}
