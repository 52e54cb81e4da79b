namespace CudaSwa.Optim;

/// <summary>Shape of the SWALR anneal.</summary>
public enum AnnealStrategy
{
    /// <summary>a(t) = (1 - cos(pi t))/2.</summary>
    Cos,
    /// <summary>a(t) = t.</summary>
    Linear,
}

/// <summary>
/// PyTorch's recipe with SWALR: cosine annealing from lrInit over the run until swaStart, then
/// SWALR: anneal from the rate reached at swaStart (L0) to swaLr over annealEpochs,
/// lr = swaLr * a(t) + L0 * (1 - a(t)), t = (progress - swaStart)/annealEpochs clipped to [0, 1],
/// a(t) = (1 - cos(pi t))/2 (cos) or t (linear); swaLr after. PyTorch steps SWALR once per
/// epoch; this evaluates t per iteration, so values agree at epoch boundaries and move smoothly between.
/// </summary>
public sealed class SwalrSchedule : LearningRateSchedule
{
    private readonly CosineSchedule _before;

    /// <summary>
    /// Cosine from <paramref name="lrInit"/> over <paramref name="epochs"/> epochs until <paramref name="swaStart"/>,
    /// then an anneal to <paramref name="swaLr"/> over <paramref name="annealEpochs"/> epochs, shaped by
    /// <paramref name="strategy"/>.
    /// </summary>
    public SwalrSchedule(double lrInit, int epochs, int swaStart, double swaLr, int annealEpochs, AnnealStrategy strategy)
    {
        Positive(lrInit, "lrInit");
        Positive(swaLr, "swaLr");
        if (swaStart < 0 || swaStart > epochs) throw new ArgumentOutOfRangeException(nameof(swaStart), $"swaStart must be in 0..{epochs}; got {swaStart}.");
        if (annealEpochs < 0) throw new ArgumentOutOfRangeException(nameof(annealEpochs), $"annealEpochs must be >= 0; got {annealEpochs}.");
        _before = new CosineSchedule(lrInit, epochs);
        LrInit = lrInit;
        Epochs = epochs;
        SwaStart = swaStart;
        SwaLr = swaLr;
        AnnealEpochs = annealEpochs;
        Strategy = strategy;
    }

    /// <summary>Learning rate at the start of the cosine phase.</summary>
    public double LrInit { get; }
    /// <summary>Length of the run in epochs: the period over which the cosine phase would reach 0.</summary>
    public int Epochs { get; }
    /// <summary>Where the anneal begins, in epochs of progress from 0.</summary>
    public int SwaStart { get; }
    /// <summary>Learning rate the anneal ends at, kept after.</summary>
    public double SwaLr { get; }
    /// <summary>Length of the anneal in epochs (0: SwaLr at once).</summary>
    public int AnnealEpochs { get; }
    /// <summary>Shape of the anneal.</summary>
    public AnnealStrategy Strategy { get; }

    /// <summary>The rate the cosine phase reaches at swaStart, where annealing begins.</summary>
    public double StartRate => SwaStart >= Epochs ? 0 : _before.At(SwaStart, 0, 1);

    /// <inheritdoc/>
    public override double At(int epoch, int iteration, int iterationsPerEpoch)
    {
        CheckProgress(epoch, iteration, iterationsPerEpoch);
        double p = Fraction(epoch, iteration, iterationsPerEpoch);
        if (p < SwaStart) return _before.At(epoch, iteration, iterationsPerEpoch);
        double t = AnnealEpochs == 0 ? 1.0 : Math.Clamp((p - SwaStart) / AnnealEpochs, 0, 1);
        double a = Strategy == AnnealStrategy.Cos ? (1 - Math.Cos(Math.PI * t)) / 2 : t;
        return SwaLr * a + StartRate * (1 - a);
    }

    /// <inheritdoc/>
    public override string Describe() =>
        $"swalr: cosine from {LrInit:g4} until epoch {SwaStart}, then {Strategy.ToString().ToLowerInvariant()} anneal to {SwaLr:g4} over {AnnealEpochs} epochs";
}
