namespace CudaSwa.Optim;

/// <summary>
/// The SWA paper's piecewise-linear schedule, exactly as in its reference code (per epoch,
/// 0-based): t = epoch / (swa ? swaStart : epochs), r = swa ? swaLr/lrInit : 0.01,
/// factor = 1 for t &lt;= 0.5, 1 - (1 - r)(t - 0.5)/0.4 for t &lt;= 0.9, r after; lr = lrInit * factor.
/// Without SWA it is the paper's SGD baseline schedule (decay to 1% of lrInit).
/// </summary>
public sealed class SwaPaperSchedule : LearningRateSchedule
{
    /// <summary>
    /// The schedule from <paramref name="lrInit"/>: the SGD baseline over <paramref name="epochs"/> epochs or,
    /// given both <paramref name="swaStart"/> and <paramref name="swaLr"/>, the SWA variant, which reaches swaLr
    /// at 0.9 x swaStart and keeps it.
    /// </summary>
    public SwaPaperSchedule(double lrInit, int epochs, int? swaStart = null, double? swaLr = null)
    {
        Positive(lrInit, "lrInit");
        if (epochs < 1) throw new ArgumentOutOfRangeException(nameof(epochs), $"Epochs must be >= 1; got {epochs}.");
        if (swaStart.HasValue != swaLr.HasValue)
            throw new ArgumentException("The SWA variant needs both swaStart and swaLr.");
        if (swaStart is < 1) throw new ArgumentOutOfRangeException(nameof(swaStart), $"swaStart must be >= 1; got {swaStart}.");
        if (swaLr.HasValue) Positive(swaLr.Value, "swaLr");
        LrInit = lrInit;
        Epochs = epochs;
        SwaStart = swaStart;
        SwaLr = swaLr;
    }

    /// <summary>Learning rate at the start.</summary>
    public double LrInit { get; }
    /// <summary>Training budget in epochs: the length of the decay without SWA.</summary>
    public int Epochs { get; }
    /// <summary>Epoch count the SWA variant decays over; null for the SGD baseline.</summary>
    public int? SwaStart { get; }
    /// <summary>Constant learning rate of the SWA phase; null for the SGD baseline.</summary>
    public double? SwaLr { get; }

    /// <inheritdoc/>
    public override double At(int epoch, int iteration, int iterationsPerEpoch)
    {
        CheckProgress(epoch, iteration, iterationsPerEpoch);
        bool swa = SwaStart.HasValue;
        double t = (double)epoch / (swa ? SwaStart!.Value : Epochs);
        double r = swa ? SwaLr!.Value / LrInit : 0.01;
        double factor = t <= 0.5 ? 1.0 : t <= 0.9 ? 1.0 - (1.0 - r) * (t - 0.5) / 0.4 : r;
        return LrInit * factor;
    }

    /// <inheritdoc/>
    public override string Describe() => SwaStart.HasValue
        ? $"swa paper: lr {LrInit:g4}, linear decay to {SwaLr:g4} between {0.5 * SwaStart:g4} and {0.9 * SwaStart:g4} epochs, then constant"
        : $"swa paper (SGD budget): lr {LrInit:g4}, linear decay to {LrInit * 0.01:g4} between {0.5 * Epochs:g4} and {0.9 * Epochs:g4} epochs";
}
