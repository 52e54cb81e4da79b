namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- optimisation and averaging

    /// <summary>
    /// One SGD step over flat buffers with PyTorch semantics:
    /// g += wd*w; v = momentum*v + g; w -= lr * (nesterov ? g + momentum*v : v).
    /// </summary>
    public void SgdStep(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper)
    {
        Own(weights, nameof(weights)); Own(gradients, nameof(gradients)); Own(velocity, nameof(velocity));
        RequireLength(gradients, weights.Length, nameof(gradients), "as many values as weights");
        RequireLength(velocity, weights.Length, nameof(velocity), "as many values as weights");
        Wrote(weights); Wrote(velocity);
        using (new OpTimer(this, "SgdStep")) SgdStepCore(weights, gradients, velocity, hyper);
    }

    /// <summary>
    /// Prepares the running-average update over a fixed list of pairs (validated here, once):
    /// each later <see cref="AverageUpdate(AveragePlan, float)"/> is one fused pass over all of
    /// them. The plan holds the buffers' addresses; dispose it before freeing them.
    /// </summary>
    public AveragePlan PrepareAverage(IReadOnlyList<AveragePair> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var array = new AveragePair[pairs.Count];
        for (int i = 0; i < array.Length; i++)
        {
            var p = pairs[i];
            Own(p.Average, "average"); Own(p.Current, "current");
            RequireFloat(p.Average, "average"); RequireFloat(p.Current, "current");
            if (p.Average.Length != p.Current.Length)
                throw new ArgumentException($"Pair {i}: average and current buffers differ in length: {p.Average.Length} vs {p.Current.Length}.", nameof(pairs));
            array[i] = p;
        }
        return PrepareAverageCore(array);
    }

    /// <summary>
    /// average += alpha * (current - average) over every pair of the plan, in one fused pass (one
    /// launch on a device). alpha = 1/(n+1) is the SWA running mean after n models; alpha =
    /// 1 - decay is an EMA; alpha = 1 copies exactly (whatever average held before).
    /// </summary>
    public void AverageUpdate(AveragePlan plan, float alpha)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (!(alpha > 0 && alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), $"The averaging weight must be in (0, 1]; got {alpha}.");
        if (!ReferenceEquals(plan.Backend, this))
            throw new ArgumentException($"The averaging plan was prepared on backend '{plan.Backend.Name}', not on '{Name}'.", nameof(plan));
        ObjectDisposedException.ThrowIf(plan.IsDisposed, plan);
        foreach (var p in plan.Pairs)
            if (p.Average.Buffer.IsDisposed || p.Current.Buffer.IsDisposed)
                throw new ObjectDisposedException(nameof(plan), "A buffer of the averaging plan was freed after the plan was prepared.");
        foreach (var p in plan.Pairs) Wrote(p.Average);
        if (plan.Pairs.Count > 0) using (new OpTimer(this, "AverageUpdate")) AverageUpdateCore(plan, alpha);
    }

    /// <summary>One update over pairs prepared for this call only (for repeated updates, prepare a plan once).</summary>
    public void AverageUpdate(ReadOnlySpan<AveragePair> pairs, float alpha)
    {
        using var plan = PrepareAverage(pairs.ToArray());
        AverageUpdate(plan, alpha);
    }

    /// <summary>One update of a single pair: average += alpha * (current - average).</summary>
    public void AverageUpdate(Tensor average, Tensor current, float alpha) =>
        AverageUpdate([new AveragePair(average, current)], alpha);

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="SgdStep"/>; the arguments are already validated.</summary>
    protected abstract void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper);
    /// <summary>The backend's implementation of <see cref="PrepareAverage"/>; the arguments are already validated.</summary>
    protected abstract AveragePlan PrepareAverageCore(AveragePair[] pairs);
    /// <summary>The backend's implementation of <see cref="AverageUpdate(AveragePlan, float)"/>; the arguments are already validated.</summary>
    protected abstract void AverageUpdateCore(AveragePlan plan, float alpha);
}
