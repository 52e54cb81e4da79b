using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Tensors;
using CudaSwa.Training;

namespace CudaSwa.Landscape;

/// <summary>One measured point of a loss landscape.</summary>
/// <param name="Kind"><see cref="RaySwa"/>, <see cref="RaySgd"/> or <see cref="Segment"/>.</param>
/// <param name="Ray">The ray (0-based); 0 on the segment.</param>
/// <param name="Position">The distance along the ray, or t on the segment (w = t·w_SGD + (1−t)·w_SWA).</param>
/// <param name="TrainLoss">Mean loss on the fixed training subset (evaluation mode, no augmentation).</param>
/// <param name="TrainError">Error on the training subset, a fraction.</param>
/// <param name="TestLoss">Mean test loss.</param>
/// <param name="TestError">Test error, a fraction.</param>
public readonly record struct LandscapePoint(string Kind, int Ray, double Position, double TrainLoss, double TrainError, double TestLoss, double TestError)
{
    /// <summary>A point on a ray from the SWA solution.</summary>
    public const string RaySwa = "ray-swa";
    /// <summary>A point on a ray from the SGD solution.</summary>
    public const string RaySgd = "ray-sgd";
    /// <summary>A point on the line through SGD and SWA.</summary>
    public const string Segment = "segment";
}

/// <summary>What a landscape shows in numbers.</summary>
/// <param name="SwaWidth">Mean over the rays from SWA of the distance where the train loss first rises by the threshold; null when no ray got there.</param>
/// <param name="SwaRaysBeyond">Rays from SWA whose train loss never rose by the threshold within the farthest distance.</param>
/// <param name="SgdWidth">The same from SGD.</param>
/// <param name="SgdRaysBeyond">The same from SGD.</param>
/// <param name="BestT">The t on the segment with the lowest test error (the first, on ties).</param>
/// <param name="BestTestError">That test error.</param>
/// <param name="SwaOnSegment">The segment's point at t = 0 (the SWA solution), when measured.</param>
/// <param name="SgdOnSegment">The segment's point at t = 1 (the SGD solution, BN recomputed), when measured.</param>
public sealed record LandscapeSummary(double? SwaWidth, int SwaRaysBeyond, double? SgdWidth, int SgdRaysBeyond, double BestT, double BestTestError,
    LandscapePoint? SwaOnSegment, LandscapePoint? SgdOnSegment);

/// <summary>
/// The SWA paper's width analysis (Izmailov et al. 2018, Sec. 3) for a finished run: train loss
/// and test error along random rays from the SWA and the SGD solution, and along the line through
/// both, w(t) = t·w_SGD + (1−t)·w_SWA. Every point is its own weight vector written by one fused
/// pass (<see cref="Backend.PointOnLine"/>) into a parameter arena the network is bound to; its BN
/// statistics are recomputed exactly as the run's trainer recomputed the SWA model's at its last
/// evaluation (same loader, seed and epoch key), so t = 0 reproduces that evaluation exactly.
/// Deterministic: the same seed gives the same numbers.
/// </summary>
public sealed class LossLandscape : IDisposable
{
    private readonly Network _net;
    private readonly TrainingOptions _run;
    private readonly DeviceDataset _trainData, _subsetData, _testData;
    private readonly BatchNormRecomputePass _bnPass;
    private readonly BatchLoader _bnLoader, _trainEval, _test;
    private readonly Evaluator _evaluator;
    private readonly Arena _swa, _sgd, _point, _pointBuffers, _direction, _swaToSgd, _sgdToSwa;
    private readonly float[] _swaHost, _sgdHost;
    private (string Kind, int Ray) _directionFor = ("", -1);

    /// <summary>
    /// Prepares the measurements for <paramref name="network"/> (built for the run's batch size)
    /// between the run's SWA and SGD parameters (host values laid out as the network's parameter
    /// arena), on the run's data and with its settings (batch size, seed, padding, BN recompute
    /// mode, epochs).
    /// </summary>
    public LossLandscape(Network network, ImageDataset train, ImageDataset test, TrainingOptions run, LandscapeOptions options,
        ReadOnlySpan<float> swaParameters, ReadOnlySpan<float> sgdParameters)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        long length = network.ParameterLayout.Length;
        if (swaParameters.Length != length || sgdParameters.Length != length)
            throw new ArgumentException($"The network's parameter arena holds {length} values; the SWA weights hold {swaParameters.Length} and the SGD weights {sgdParameters.Length}.");
        _net = network;
        _run = run;
        Options = options;
        var backend = network.Backend;
        var augment = new AugmentSpec { Padding = run.Padding };
        _trainData = new DeviceDataset(train, backend);
        _subsetData = new DeviceDataset(train.Subset(Math.Min(options.TrainSubset, train.Count), options.Seed ^ 0x5EB5E7UL), backend);
        _testData = new DeviceDataset(test, backend);
        _bnPass = run.BnRecomputePass(epochKey: run.Epochs - 1);
        RecomputeMode = _bnPass.Mode;
        // The run's own recompute after its last epoch: the same batches, augmentation and order.
        _bnLoader = _bnPass.CreateLoader(_trainData);
        _trainEval = new BatchLoader(_subsetData, run.BatchSize, shuffle: false, augment.ForEvaluation(), run.Seed);
        _test = new BatchLoader(_testData, run.BatchSize, shuffle: false, augment.ForEvaluation(), run.Seed);
        _evaluator = new Evaluator(network);
        _swaHost = swaParameters.ToArray();
        _sgdHost = sgdParameters.ToArray();
        _swa = network.CreateParameterArena();
        _sgd = network.CreateParameterArena();
        _swa.FromHost(_swaHost);
        _sgd.FromHost(_sgdHost);
        _point = network.CreateParameterArena();
        _pointBuffers = network.CreateBufferArena();
        _direction = network.CreateParameterArena();
        var toSgd = new float[length];
        var toSwa = new float[length];
        double squares = 0, swaSquares = 0;
        for (int i = 0; i < length; i++)
        {
            toSgd[i] = _sgdHost[i] - _swaHost[i];
            toSwa[i] = _swaHost[i] - _sgdHost[i];
            squares += (double)toSgd[i] * toSgd[i];
            swaSquares += (double)_swaHost[i] * _swaHost[i];
        }
        _swaToSgd = network.CreateParameterArena();
        _sgdToSwa = network.CreateParameterArena();
        _swaToSgd.FromHost(toSgd);
        _sgdToSwa.FromHost(toSwa);
        SegmentLength = Math.Sqrt(squares);
        SwaNorm = Math.Sqrt(swaSquares);
        MaxDistance = options.MaxDistance ?? (options.FilterNormalized ? 1.0 : 0.3 * SwaNorm);
        if (!(MaxDistance > 0))
            throw new ArgumentException("The SWA weights are all zero, so the default farthest distance (0.3 × their norm) is 0; set MaxDistance.", nameof(options));
    }

    /// <summary>The options measured.</summary>
    public LandscapeOptions Options { get; }
    /// <summary>‖w_SGD − w_SWA‖ over all parameters.</summary>
    public double SegmentLength { get; }
    /// <summary>‖w_SWA‖ over all parameters.</summary>
    public double SwaNorm { get; }
    /// <summary>The farthest distance along a ray (from the options, or the default).</summary>
    public double MaxDistance { get; }
    /// <summary>How each point's BN statistics are recomputed: the run's mode (exact when the run averaged them instead).</summary>
    public BatchNormRecomputeMode RecomputeMode { get; }

    /// <summary>Measurements the whole landscape takes (each a BN recompute and two evaluations).</summary>
    public int MeasurementCount => 2 * (1 + Options.Rays * Options.Steps) + Options.SegmentPoints;

    /// <summary>Rows the whole landscape has (the solution itself is one row per ray).</summary>
    public int PointCount => 2 * Options.Rays * (Options.Steps + 1) + Options.SegmentPoints;

    /// <summary>The distance of step <paramref name="k"/> along a ray.</summary>
    public double Distance(int k) => MaxDistance * k / Options.Steps;

    /// <summary>
    /// Measures every point not in <paramref name="done"/> (points of an earlier, interrupted run
    /// with the same options), in a fixed order; <paramref name="measured"/> gets the rows of each
    /// measurement as it completes (to save them), <paramref name="progress"/> (done, total, what).
    /// Returns every point, the earlier ones included, in the fixed order. Stops between points when
    /// <paramref name="cancel"/> fires (returning what exists).
    /// </summary>
    public List<LandscapePoint> Run(IReadOnlyCollection<LandscapePoint> done, Action<IReadOnlyList<LandscapePoint>>? measured = null,
        Action<int, int, string>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(done);
        var known = new Dictionary<(string, int, double), LandscapePoint>();
        foreach (var p in done) known[(p.Kind, p.Ray, p.Position)] = p;
        var all = new List<LandscapePoint>();
        int total = MeasurementCount, step = 0;
        foreach (var (kind, ray, k) in Plan())
        {
            if (cancel.IsCancellationRequested) break;
            step++;
            double position = kind == LandscapePoint.Segment ? Options.SegmentT(k) : Distance(k);
            int firstRay = ray < 0 ? 0 : ray;
            if (known.ContainsKey((kind, firstRay, position)))
            {
                if (ray < 0) for (int r = 0; r < Options.Rays; r++) all.Add(known.TryGetValue((kind, r, position), out var p) ? p : Copy(known[(kind, firstRay, position)], r));
                else all.Add(known[(kind, ray, position)]);
                continue;
            }
            string what = kind == LandscapePoint.Segment ? $"segment t = {position:0.###}" : ray < 0 ? $"{Origin(kind)} solution" : $"ray {ray + 1} from {Origin(kind)}, distance {position:0.###}";
            progress?.Invoke(step - 1, total, what);
            var m = Measure(kind, ray, position);
            var rows = ray < 0 ? Enumerable.Range(0, Options.Rays).Select(r => Copy(m, r)).ToList() : [m with { Ray = kind == LandscapePoint.Segment ? 0 : ray }];
            all.AddRange(rows);
            measured?.Invoke(rows);
        }
        progress?.Invoke(Math.Min(step, total), total, "done");
        return all;
    }

    private static LandscapePoint Copy(LandscapePoint p, int ray) => p with { Ray = ray };

    private static string Origin(string kind) => kind == LandscapePoint.RaySwa ? "SWA" : "SGD";

    /// <summary>(kind, ray or −1 for the solution itself, step or segment index), in the order measured.</summary>
    private IEnumerable<(string Kind, int Ray, int Index)> Plan()
    {
        foreach (var kind in new[] { LandscapePoint.RaySwa, LandscapePoint.RaySgd })
        {
            yield return (kind, -1, 0);
            for (int r = 0; r < Options.Rays; r++)
                for (int k = 1; k <= Options.Steps; k++) yield return (kind, r, k);
        }
        for (int i = 0; i < Options.SegmentPoints; i++) yield return (LandscapePoint.Segment, 0, i);
    }

    /// <summary>Writes the point's weights, recomputes its BN statistics and evaluates it.</summary>
    private LandscapePoint Measure(string kind, int ray, double position)
    {
        var backend = _net.Backend;
        if (kind == LandscapePoint.Segment)
        {
            // Each half from its nearer end, so t = 0 and t = 1 are the solutions' exact bits.
            if (position == 0) backend.Copy(_swa.All, _point.All);
            else if (position == 1) backend.Copy(_sgd.All, _point.All);
            else if (position < 0.5) backend.PointOnLine(_swa.All, _swaToSgd.All, (float)position, _point.All);
            else backend.PointOnLine(_sgd.All, _sgdToSwa.All, (float)(1 - position), _point.All);
        }
        else
        {
            var origin = kind == LandscapePoint.RaySwa ? _swa : _sgd;
            if (ray < 0 || position == 0) backend.Copy(origin.All, _point.All);
            else
            {
                if (_directionFor != (kind, ray))
                {
                    _direction.FromHost(Options.FilterNormalized
                        ? LandscapeDirections.FilterNormalized(_net.ParameterLayout, kind == LandscapePoint.RaySwa ? _swaHost : _sgdHost, Options.Seed, ray)
                        : LandscapeDirections.Unit(_net.ParameterLayout, Options.Seed, ray));
                    _directionFor = (kind, ray);
                }
                backend.PointOnLine(origin.All, _direction.All, (float)position, _point.All);
            }
        }
        using (_net.Bind(_point, _pointBuffers))
        {
            _bnPass.Run(_net, _bnLoader);
            var (trainLoss, trainAcc) = _evaluator.Evaluate(_trainEval);
            var (testLoss, testAcc) = _evaluator.Evaluate(_test);
            return new LandscapePoint(kind, Math.Max(ray, 0), position, trainLoss, 1 - trainAcc, testLoss, 1 - testAcc);
        }
    }

    /// <summary>Widths along the rays from each solution and the best point of the segment.</summary>
    public static LandscapeSummary Summarize(IReadOnlyList<LandscapePoint> points, LandscapeOptions options)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(options);
        (double? Width, int Beyond) Width(string kind)
        {
            var widths = new List<double>();
            int beyond = 0;
            foreach (var ray in points.Where(p => p.Kind == kind).GroupBy(p => p.Ray))
            {
                var curve = ray.OrderBy(p => p.Position).ToList();
                if (curve.Count == 0 || curve[0].Position != 0) continue;
                double limit = curve[0].TrainLoss + options.WidthThreshold;
                int k = curve.FindIndex(p => p.TrainLoss >= limit);
                if (k < 0) { beyond++; continue; }
                var (a, b) = (curve[k - 1], curve[k]);
                widths.Add(a.Position + (limit - a.TrainLoss) / (b.TrainLoss - a.TrainLoss) * (b.Position - a.Position));
            }
            return (widths.Count == 0 ? null : widths.Average(), beyond);
        }
        var (swaWidth, swaBeyond) = Width(LandscapePoint.RaySwa);
        var (sgdWidth, sgdBeyond) = Width(LandscapePoint.RaySgd);
        var segment = points.Where(p => p.Kind == LandscapePoint.Segment).OrderBy(p => p.Position).ToList();
        var best = segment.Count == 0 ? default : segment.MinBy(p => p.TestError);
        LandscapePoint? At(double t) => segment.Where(p => p.Position == t).Select(p => (LandscapePoint?)p).FirstOrDefault();
        return new LandscapeSummary(swaWidth, swaBeyond, sgdWidth, sgdBeyond, best.Position, best.TestError, At(0), At(1));
    }

    /// <summary>Frees the arenas, loaders and device datasets (not the network).</summary>
    public void Dispose()
    {
        _evaluator.Dispose();
        _bnLoader.Dispose();
        _trainEval.Dispose();
        _test.Dispose();
        _trainData.Dispose();
        _subsetData.Dispose();
        _testData.Dispose();
        foreach (var a in new[] { _swa, _sgd, _point, _pointBuffers, _direction, _swaToSgd, _sgdToSwa }) a.Dispose();
    }
}
