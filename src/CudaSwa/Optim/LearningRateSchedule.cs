namespace CudaSwa.Optim;

/// <summary>
/// A learning rate as a function of training progress, asked for at every iteration.
/// Epochs and iterations are 0-based; <c>iteration</c> counts within the epoch.
/// </summary>
public abstract class LearningRateSchedule
{
    public abstract double At(int epoch, int iteration, int iterationsPerEpoch);

    /// <summary>One line for logs, e.g. "swa: lr 0.1 -> 0.05 ...".</summary>
    public abstract string Describe();

    protected static void CheckProgress(int epoch, int iteration, int iterationsPerEpoch)
    {
        if (epoch < 0 || iteration < 0 || iterationsPerEpoch < 1 || iteration >= iterationsPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(iteration), $"Progress (epoch {epoch}, iteration {iteration} of {iterationsPerEpoch}) is not valid.");
    }

    protected static double Fraction(int epoch, int iteration, int iterationsPerEpoch) => epoch + (double)iteration / iterationsPerEpoch;

    protected static void Positive(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value)) throw new ArgumentOutOfRangeException(name, $"{name} must be a finite number > 0; got {value}.");
    }
}

/// <summary>A fixed learning rate.</summary>
public sealed class ConstantSchedule : LearningRateSchedule
{
    public ConstantSchedule(double lr)
    {
        Positive(lr, "lr");
        Lr = lr;
    }

    public double Lr { get; }
    public override double At(int epoch, int iteration, int iterationsPerEpoch) { CheckProgress(epoch, iteration, iterationsPerEpoch); return Lr; }
    public override string Describe() => $"constant lr {Lr:g4}";
}

/// <summary>Cosine annealing from lrInit to lrMin over the run, per iteration: lrMin + (lrInit - lrMin)(1 + cos(pi t/T))/2.</summary>
public sealed class CosineSchedule : LearningRateSchedule
{
    public CosineSchedule(double lrInit, int epochs, double lrMin = 0)
    {
        Positive(lrInit, "lrInit");
        if (epochs < 1) throw new ArgumentOutOfRangeException(nameof(epochs), $"Epochs must be >= 1; got {epochs}.");
        if (!(lrMin >= 0 && lrMin <= lrInit)) throw new ArgumentOutOfRangeException(nameof(lrMin), $"lrMin must be in [0, lrInit]; got {lrMin}.");
        LrInit = lrInit;
        Epochs = epochs;
        LrMin = lrMin;
    }

    public double LrInit { get; }
    public int Epochs { get; }
    public double LrMin { get; }

    public override double At(int epoch, int iteration, int iterationsPerEpoch)
    {
        CheckProgress(epoch, iteration, iterationsPerEpoch);
        double t = Math.Min(1.0, Fraction(epoch, iteration, iterationsPerEpoch) / Epochs);
        return LrMin + (LrInit - LrMin) * (1 + Math.Cos(Math.PI * t)) / 2;
    }

    public override string Describe() => $"cosine lr {LrInit:g4} -> {LrMin:g4} over {Epochs} epochs";
}
