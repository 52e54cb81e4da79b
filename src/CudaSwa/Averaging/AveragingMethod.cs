using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// One averaging method as a component: the weight of the current model in each update, the state
/// it keeps beyond the average (if any), and how it names and describes itself in the setup line
/// and the final table. <see cref="WeightAverager"/>, the checkpoint and the trainer ask the method
/// instead of naming it, so a new method is a class deriving from this one (in the file of its
/// state, when it has one), its <see cref="AveragingKind"/> with its arm in
/// <see cref="AveragingOptions.CreateMethod"/>, its options, and its flags.
/// </summary>
internal abstract class AveragingMethod
{
    protected AveragingMethod(AveragingOptions options) => Options = options;

    /// <summary>The options the method was made from.</summary>
    public AveragingOptions Options { get; }

    /// <summary>Its name in tables, logs and metrics columns: "SWA", "EMA", "SWAG", "LAWA".</summary>
    public abstract string Name { get; }

    /// <summary>The name of the averaged model's row and metrics columns: <see cref="Name"/>, except where the average is another method's (SWAG's mean is SWA's).</summary>
    public virtual string AverageName => Name;

    /// <summary>How often the method averages when the run does not say: every k steps, or 0 for once per epoch (or cycle).</summary>
    public virtual int DefaultEverySteps => 0;

    /// <summary>
    /// The weight of the current model in the fused update after <paramref name="averaged"/> models:
    /// 1/(n+1) here (the equal-weight running mean), 1 — a copy — for the first update of any method.
    /// </summary>
    public virtual float UpdateWeight(long averaged) => averaged == 0 ? 1f : (float)(1.0 / (averaged + 1));

    /// <summary>
    /// The state the method keeps beyond the average, on <paramref name="backend"/>, or null when it
    /// keeps none. A method with state folds the current weights into <paramref name="mean"/> itself
    /// (<see cref="IAveragingState.Collect"/>); without one, the average is the fused update's.
    /// </summary>
    public virtual IAveragingState? CreateState(Backend backend, Tensor mean) => null;

    /// <summary>The method and its settings, for the run's setup line (e.g. "EMA decay 0.999").</summary>
    public virtual string Describe() => Name;

    /// <summary>What the average holds after <paramref name="count"/> updates, for its row in the final table.</summary>
    public virtual string DescribeAverage(long count, IAveragingState? state) => $"average of {count} {(count == 1 ? "model" : "models")}";
}

/// <summary>SWA: the equal-weight mean of every model averaged, w_swa = (w_swa·n + w)/(n+1).</summary>
internal sealed class SwaMethod(AveragingOptions options) : AveragingMethod(options)
{
    public override string Name => "SWA";
}
