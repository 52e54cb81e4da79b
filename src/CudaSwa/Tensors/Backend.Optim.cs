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

    /// <summary>
    /// The SWAG collection pass (Maddox et al. 2019), one fused pass over flat buffers (one launch
    /// on a device): mean += alpha·(current − mean), squareMean += alpha·(current² − squareMean),
    /// then deviation = current − mean (the updated mean). alpha = 1/(n+1) after n models; alpha = 1
    /// copies (mean = current, squareMean = current², deviation = 0). <paramref name="deviation"/>
    /// may be a null tensor (diagonal-only SWAG).
    /// </summary>
    public void SwagCollect(Tensor current, Tensor mean, Tensor squareMean, Tensor deviation, float alpha)
    {
        Own(current, nameof(current)); Own(mean, nameof(mean)); Own(squareMean, nameof(squareMean));
        RequireFloat(current, nameof(current)); RequireFloat(mean, nameof(mean)); RequireFloat(squareMean, nameof(squareMean));
        RequireLength(mean, current.Length, nameof(mean), "as many values as current");
        RequireLength(squareMean, current.Length, nameof(squareMean), "as many values as current");
        if (!deviation.IsNull)
        {
            Own(deviation, nameof(deviation)); RequireFloat(deviation, nameof(deviation));
            RequireLength(deviation, current.Length, nameof(deviation), "as many values as current");
        }
        if (!(alpha > 0 && alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), $"The averaging weight must be in (0, 1]; got {alpha}.");
        Wrote(mean); Wrote(squareMean); if (!deviation.IsNull) Wrote(deviation);
        using (new OpTimer(this, "SwagCollect")) SwagCollectCore(current, mean, squareMean, deviation, alpha);
    }

    /// <summary>
    /// Writes one SWAG weight sample into <paramref name="output"/> in one fused pass:
    /// output = mean + spec.DiagonalScale·sqrt(max(squareMean − mean², spec.VarianceFloor))·z₁
    /// + spec.LowRankScale·Σₖ deviations[k]·columnNormals[k], where z₁ is a standard normal per
    /// element drawn from Philox keyed by (spec.Seed, spec.Sample, element) — the same draws on
    /// every backend. <paramref name="deviations"/> holds spec.Columns columns of mean.Length values
    /// each, one after another; <paramref name="deviations"/> and <paramref name="columnNormals"/>
    /// may be null tensors when spec.Columns is 0.
    /// </summary>
    public void SwagSample(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output)
    {
        Own(mean, nameof(mean)); Own(squareMean, nameof(squareMean)); Own(output, nameof(output));
        RequireFloat(mean, nameof(mean)); RequireFloat(squareMean, nameof(squareMean)); RequireFloat(output, nameof(output));
        RequireLength(squareMean, mean.Length, nameof(squareMean), "as many values as mean");
        RequireLength(output, mean.Length, nameof(output), "as many values as mean");
        if (spec.Columns < 0) throw new ArgumentOutOfRangeException(nameof(spec), $"Columns must be >= 0; got {spec.Columns}.");
        if (spec.Columns > 0)
        {
            Own(deviations, nameof(deviations)); Own(columnNormals, nameof(columnNormals));
            RequireFloat(deviations, nameof(deviations)); RequireFloat(columnNormals, nameof(columnNormals));
            if (deviations.Length < spec.Columns * mean.Length)
                throw new ArgumentException($"deviations has {deviations.Length} values; {spec.Columns} columns of {mean.Length} need {spec.Columns * mean.Length}.", nameof(deviations));
            if (columnNormals.Length < spec.Columns)
                throw new ArgumentException($"columnNormals has {columnNormals.Length} values; {spec.Columns} columns need as many.", nameof(columnNormals));
        }
        if (!(spec.VarianceFloor >= 0) || !float.IsFinite(spec.DiagonalScale) || !float.IsFinite(spec.LowRankScale))
            throw new ArgumentOutOfRangeException(nameof(spec), $"The variance floor must be >= 0 and the scales finite; got {spec}.");
        Wrote(output);
        using (new OpTimer(this, "SwagSample")) SwagSampleCore(mean, squareMean, deviations, columnNormals, spec, output);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="SgdStep"/>; the arguments are already validated.</summary>
    private protected abstract void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper);
    /// <summary>The backend's implementation of <see cref="PrepareAverage"/>; the arguments are already validated.</summary>
    private protected abstract AveragePlan PrepareAverageCore(AveragePair[] pairs);
    /// <summary>The backend's implementation of <see cref="AverageUpdate(AveragePlan, float)"/>; the arguments are already validated.</summary>
    private protected abstract void AverageUpdateCore(AveragePlan plan, float alpha);
    /// <summary>The backend's implementation of <see cref="SwagCollect"/>; the arguments are already validated.</summary>
    private protected abstract void SwagCollectCore(Tensor current, Tensor mean, Tensor squareMean, Tensor deviation, float alpha);
    /// <summary>The backend's implementation of <see cref="SwagSample"/>; the arguments are already validated.</summary>
    private protected abstract void SwagSampleCore(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output);
}
