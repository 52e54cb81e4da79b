namespace CudaSwa.Optim;

/// <summary>
/// A learning rate as a function of training progress, asked for at every iteration.
/// Epochs and iterations are 0-based; <c>iteration</c> counts within the epoch.
/// </summary>
public abstract class LearningRateSchedule
{
    /// <summary>
    /// The learning rate at iteration <paramref name="iteration"/> (within the epoch) of epoch
    /// <paramref name="epoch"/>, both 0-based, with <paramref name="iterationsPerEpoch"/> iterations per epoch;
    /// throws <see cref="ArgumentOutOfRangeException"/> for progress that is not valid.
    /// </summary>
    public abstract double At(int epoch, int iteration, int iterationsPerEpoch);

    /// <summary>One line for logs, e.g. "swa: lr 0.1 -> 0.05 ...".</summary>
    public abstract string Describe();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless epoch and iteration are non-negative and the iteration lies within the epoch.</summary>
    protected static void CheckProgress(int epoch, int iteration, int iterationsPerEpoch)
    {
        if (epoch < 0 || iteration < 0 || iterationsPerEpoch < 1 || iteration >= iterationsPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(iteration), $"Progress (epoch {epoch}, iteration {iteration} of {iterationsPerEpoch}) is not valid.");
    }

    /// <summary>Progress in epochs as a real number: epoch + iteration / iterationsPerEpoch.</summary>
    protected static double Fraction(int epoch, int iteration, int iterationsPerEpoch) => epoch + (double)iteration / iterationsPerEpoch;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming <paramref name="name"/> unless <paramref name="value"/> is finite and greater than 0.</summary>
    protected static void Positive(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value)) throw new ArgumentOutOfRangeException(name, $"{name} must be a finite number > 0; got {value}.");
    }
}

/// <summary>A fixed learning rate.</summary>
public sealed class ConstantSchedule : LearningRateSchedule
{
    /// <summary>The constant rate <paramref name="lr"/> (finite, greater than 0).</summary>
    public ConstantSchedule(double lr)
    {
        Positive(lr, "lr");
        Lr = lr;
    }

    /// <summary>The learning rate.</summary>
    public double Lr { get; }
    /// <inheritdoc/>
    public override double At(int epoch, int iteration, int iterationsPerEpoch) { CheckProgress(epoch, iteration, iterationsPerEpoch); return Lr; }
    /// <inheritdoc/>
    public override string Describe() => $"constant lr {Lr:g4}";
}

/// <summary>Cosine annealing from lrInit to lrMin over the run, per iteration: lrMin + (lrInit - lrMin)(1 + cos(pi t/T))/2.</summary>
public sealed class CosineSchedule : LearningRateSchedule
{
    /// <summary>Cosine annealing from <paramref name="lrInit"/> to <paramref name="lrMin"/> (in [0, lrInit]) over <paramref name="epochs"/> epochs.</summary>
    public CosineSchedule(double lrInit, int epochs, double lrMin = 0)
    {
        Positive(lrInit, "lrInit");
        if (epochs < 1) throw new ArgumentOutOfRangeException(nameof(epochs), $"Epochs must be >= 1; got {epochs}.");
        if (!(lrMin >= 0 && lrMin <= lrInit)) throw new ArgumentOutOfRangeException(nameof(lrMin), $"lrMin must be in [0, lrInit]; got {lrMin}.");
        LrInit = lrInit;
        Epochs = epochs;
        LrMin = lrMin;
    }

    /// <summary>Learning rate at the start.</summary>
    public double LrInit { get; }
    /// <summary>Length of the annealing T, in epochs; the rate stays at <see cref="LrMin"/> after.</summary>
    public int Epochs { get; }
    /// <summary>Learning rate at the end.</summary>
    public double LrMin { get; }

    /// <inheritdoc/>
    public override double At(int epoch, int iteration, int iterationsPerEpoch)
    {
        CheckProgress(epoch, iteration, iterationsPerEpoch);
        double t = Math.Min(1.0, Fraction(epoch, iteration, iterationsPerEpoch) / Epochs);
        return LrMin + (LrInit - LrMin) * (1 + Math.Cos(Math.PI * t)) / 2;
    }

    /// <inheritdoc/>
    public override string Describe() => $"cosine lr {LrInit:g4} -> {LrMin:g4} over {Epochs} epochs";
}
