namespace CudaSwa.Landscape;

/// <summary>
/// What <see cref="LossLandscape"/> measures: random rays from the SWA and the SGD solution, and
/// the segment through both (Izmailov et al. 2018, Sec. 3, Figs. 3–5).
/// </summary>
public sealed record LandscapeOptions
{
    /// <summary>Random directions per solution (default 10).</summary>
    public int Rays { get; init; } = 10;

    /// <summary>Steps along each ray: distances k·MaxDistance/Steps for k = 0..Steps (default 10).</summary>
    public int Steps { get; init; } = 10;

    /// <summary>
    /// The farthest distance along a ray. Null: 0.3 × ‖w_SWA‖ for unit directions (far enough for the
    /// train loss to rise clearly — random directions are much flatter than the one towards the other
    /// solution — and the scale of the paper's figures), 1 for filter-normalised ones.
    /// </summary>
    public double? MaxDistance { get; init; }

    /// <summary>
    /// Filter-normalised directions (Li et al. 2018): each filter (output channel of a convolution,
    /// row of a linear layer) of the direction is scaled to the norm of the same filter of the
    /// solution, and biases and BN parameters get no component. Off: directions of unit L2 norm over
    /// all parameters.
    /// </summary>
    public bool FilterNormalized { get; init; }

    /// <summary>Training images (a fixed, seeded, class-balanced subset) whose loss and error are measured at each point (default 5,000).</summary>
    public int TrainSubset { get; init; } = 5000;

    /// <summary>Points on the segment w(t) = t·w_SGD + (1−t)·w_SWA, evenly from <see cref="SegmentFrom"/> to <see cref="SegmentTo"/> (default 21).</summary>
    public int SegmentPoints { get; init; } = 21;

    /// <summary>First t of the segment (default −0.5: past the SWA end).</summary>
    public double SegmentFrom { get; init; } = -0.5;

    /// <summary>Last t of the segment (default 1.5: past the SGD end).</summary>
    public double SegmentTo { get; init; } = 1.5;

    /// <summary>A ray's width: the distance at which the train loss first rises this much above the solution's (default 0.1 nats).</summary>
    public double WidthThreshold { get; init; } = 0.1;

    /// <summary>Seed of the random directions.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the property that is out of range.</summary>
    public void Validate()
    {
        static void Fail(string property, string problem) => throw new ArgumentException(problem, property);
        if (Rays < 1 || Rays > 1000) Fail(nameof(Rays), $"Rays must be in 1..1000; got {Rays}.");
        if (Steps < 1 || Steps > 1000) Fail(nameof(Steps), $"Steps must be in 1..1000; got {Steps}.");
        if (MaxDistance is double d && !(d > 0 && double.IsFinite(d))) Fail(nameof(MaxDistance), $"MaxDistance must be a finite number > 0; got {d}.");
        if (TrainSubset < 1) Fail(nameof(TrainSubset), $"TrainSubset must be >= 1; got {TrainSubset}.");
        if (SegmentPoints < 2 || SegmentPoints > 10000) Fail(nameof(SegmentPoints), $"SegmentPoints must be in 2..10000; got {SegmentPoints}.");
        if (!(SegmentFrom < SegmentTo) || !double.IsFinite(SegmentFrom) || !double.IsFinite(SegmentTo))
            Fail(nameof(SegmentFrom), $"SegmentFrom must be below SegmentTo, both finite; got {SegmentFrom} and {SegmentTo}.");
        if (!(WidthThreshold > 0) || !double.IsFinite(WidthThreshold)) Fail(nameof(WidthThreshold), $"WidthThreshold must be a finite number > 0; got {WidthThreshold}.");
    }

    /// <summary>The t of segment point <paramref name="index"/>.</summary>
    public double SegmentT(int index) => SegmentFrom + (SegmentTo - SegmentFrom) * index / (SegmentPoints - 1);
}
