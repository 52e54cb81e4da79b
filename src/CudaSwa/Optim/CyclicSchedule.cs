namespace CudaSwa.Optim;

/// <summary>
/// The SWA paper's cyclical schedule (its Eq. 2). Before swaStart: the paper's decay with budget
/// swaStart, from lrInit down to alpha1. From swaStart on, in cycles of c epochs (c * iterations
/// per epoch iterations), with i the iteration counted from swaStart (1-based):
/// t(i) = (mod(i - 1, c) + 1)/c, lr = (1 - t) alpha1 + t alpha2 — linear from near alpha1 to
/// alpha2 at the last iteration of each cycle, where the model is averaged.
/// </summary>
public sealed class CyclicSchedule : LearningRateSchedule
{
    private readonly SwaPaperSchedule _before;

    /// <summary>
    /// Decay from <paramref name="lrInit"/> to <paramref name="alpha1"/> until epoch <paramref name="swaStart"/>,
    /// then cycles of <paramref name="cycleEpochs"/> epochs, each linear from near <paramref name="alpha1"/> to
    /// <paramref name="alpha2"/>.
    /// </summary>
    public CyclicSchedule(double lrInit, int swaStart, double alpha1, double alpha2, int cycleEpochs)
    {
        Positive(lrInit, "lrInit");
        Positive(alpha1, "alpha1");
        Positive(alpha2, "alpha2");
        if (swaStart < 1) throw new ArgumentOutOfRangeException(nameof(swaStart), $"swaStart must be >= 1; got {swaStart}.");
        if (cycleEpochs < 1) throw new ArgumentOutOfRangeException(nameof(cycleEpochs), $"The cycle must be >= 1 epoch; got {cycleEpochs}.");
        _before = new SwaPaperSchedule(lrInit, swaStart, swaStart, alpha1);
        LrInit = lrInit;
        SwaStart = swaStart;
        Alpha1 = alpha1;
        Alpha2 = alpha2;
        CycleEpochs = cycleEpochs;
    }

    /// <summary>Learning rate at the start of training.</summary>
    public double LrInit { get; }
    /// <summary>Epochs of the initial decay; the cycles begin at this 0-based epoch.</summary>
    public int SwaStart { get; }
    /// <summary>Learning rate at the start of each cycle and at the end of the initial decay.</summary>
    public double Alpha1 { get; }
    /// <summary>Learning rate at the last iteration of each cycle.</summary>
    public double Alpha2 { get; }
    /// <summary>Length of a cycle, in epochs.</summary>
    public int CycleEpochs { get; }

    /// <inheritdoc/>
    public override double At(int epoch, int iteration, int iterationsPerEpoch)
    {
        CheckProgress(epoch, iteration, iterationsPerEpoch);
        if (epoch < SwaStart) return _before.At(epoch, iteration, iterationsPerEpoch);
        long i = (long)(epoch - SwaStart) * iterationsPerEpoch + iteration + 1;
        long c = (long)CycleEpochs * iterationsPerEpoch;
        double t = (double)((i - 1) % c + 1) / c;
        return (1 - t) * Alpha1 + t * Alpha2;
    }

    /// <inheritdoc/>
    public override string Describe() =>
        $"cyclic: decay from {LrInit:g4} to {Alpha1:g4} until epoch {SwaStart}, then cycles of {CycleEpochs} epoch(s) from {Alpha1:g4} to {Alpha2:g4}";
}
