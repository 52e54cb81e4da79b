using Spectre.Console;
using System.CommandLine;
using CudaSwa.Data;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaSwa.Cli.Output;
using CudaSwa.IO;
using CudaSwa.Landscape;
using CudaSwa.Models;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Commands;

/// <summary>
/// `cudaswa landscape --run DIR`: the SWA paper's width analysis for a finished run — train loss and
/// test error along random rays from the SWA and the SGD solution and along the line through both —
/// written to the run folder as landscape.csv, landscape.png and landscape.txt. Resumable: a killed
/// run continues from the points already in landscape.csv (same options).
/// </summary>
public static class LandscapeCommand
{
    private static readonly Option<string> Run = new("--run") { Description = "A finished run folder of cudaswa train (with model.safetensors and swa.safetensors).", Required = true };
    private static readonly Option<int?> Rays = new("--rays") { Description = "Random directions from each solution (default 10; 3 for a small run)." };
    private static readonly Option<int?> Steps = new("--steps") { Description = "Steps along each ray (default 10; 5 for a small run)." };
    private static readonly Option<double?> MaxDistance = new("--max-distance") { Description = "Farthest distance along a ray (default 0.3 x the norm of the SWA weights; 1 with --filter-normalized)." };
    private static readonly Option<bool> FilterNormalized = new("--filter-normalized") { Description = "Filter-normalised directions (Li et al. 2018) instead of unit-norm ones." };
    private static readonly Option<int?> TrainPoints = new("--train-points") { Description = "Training images (a fixed seeded subset) measured at each point (default 5000; 2000 for a small run)." };
    private static readonly Option<int?> SegmentPoints = new("--segment-points") { Description = "Points on the segment t = -0.5..1.5 through SWA (t=0) and SGD (t=1) (default 21; 9 for a small run)." };
    private static readonly Option<double?> Threshold = new("--threshold") { Description = "Width: the distance where the train loss first rises this much (default 0.1 nats)." };
    private static readonly Option<ulong?> Seed = new("--seed") { Description = "Seed of the random directions (default: the run's seed)." };
    private static readonly Option<bool> Fresh = new("--fresh") { Description = "Discard an earlier landscape of this run (otherwise it is continued, which needs the same options)." };

    /// <summary>A run this small (training images) gets scaled-down defaults, so the landscape takes minutes on a CPU.</summary>
    private const int SmallRun = 10_000;

    public const string CsvFile = "landscape.csv", PngFile = "landscape.png", TextFile = "landscape.txt", OptionsFile = "landscape.json";

    /// <summary>A progress line at most this often (besides the first and the last point).</summary>
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(10);

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("landscape", "Train loss and test error around the SWA and SGD solutions of a finished run (the SWA paper's width analysis).");
        foreach (var o in new Option[] { Run, Rays, Steps, MaxDistance, FilterNormalized, TrainPoints, SegmentPoints, Threshold, Seed, Options.SettingsTable.Device.Option, Fresh }) cmd.Options.Add(o);
        cmd.SetAction(p => Execute(p, env));
        return cmd;
    }

    private static int Execute(ParseResult p, CliEnvironment env)
    {
        string dir = p.GetValue(Run)!;
        // Everything is checked before anything is written.
        var state = Checkpoint.ReadState(dir);
        var settings = RunSettings.FromState(state, Path.Combine(dir, Checkpoint.StateFile));
        var run = settings.Training;
        if (state.NextEpoch < run.Epochs)
            throw new OptionException($"--run: '{dir}' stopped after epoch {state.NextEpoch} of {run.Epochs}; finish it first (cudaswa train --resume {dir}).");
        string swaPath = Path.Combine(dir, Checkpoint.SwaFile), sgdPath = Path.Combine(dir, Checkpoint.ModelFile);
        if (!File.Exists(swaPath))
            throw new OptionException($"--run: '{dir}' has no {Checkpoint.SwaFile}: the run averaged no weights (--sgd-only?), so there is no SWA solution to look around.");
        if (!File.Exists(sgdPath)) throw new OptionException($"--run: '{dir}' has no {Checkpoint.ModelFile}.");
        var (train, test) = DataSources.Load(settings, forTraining: false, env);
        bool small = train.Count <= SmallRun;
        var options = new LandscapeOptions
        {
            Rays = p.GetValue(Rays) ?? (small ? 3 : 10),
            Steps = p.GetValue(Steps) ?? (small ? 5 : 10),
            MaxDistance = p.GetValue(MaxDistance),
            FilterNormalized = p.GetValue(FilterNormalized),
            TrainSubset = Math.Min(p.GetValue(TrainPoints) ?? (small ? 2000 : 5000), train.Count),
            SegmentPoints = p.GetValue(SegmentPoints) ?? (small ? 9 : 21),
            WidthThreshold = p.GetValue(Threshold) ?? 0.1,
            Seed = p.GetValue(Seed) ?? run.Seed,
        };
        try { options.Validate(); }
        catch (ArgumentException e) { throw new OptionException(e.Message); }

        using var backend = DeviceChoice.Open((Options.SettingsTable.Device.Get(p) ?? "auto").Trim().ToLowerInvariant(), false, out string deviceDescription);
        using var net = ModelZoo.Create(run.Model, settings.NumClasses, backend, run.BatchSize);
        float[] swa = LoadParameters(net, swaPath), sgd = LoadParameters(net, sgdPath);

        using var landscape = new LossLandscape(net, train, test, run, options, swa, sgd);
        // What the points depend on: the options with the distance resolved, and the run's committed checkpoint.
        var record = new LandscapeRecord(options with { MaxDistance = landscape.MaxDistance }, state.CheckpointFolder);
        string recordJson = JsonSerializer.Serialize(record, CliJsonContext.Default.LandscapeRecord);
        var done = new List<LandscapePoint>();
        string optionsPath = Path.Combine(dir, OptionsFile), csvPath = Path.Combine(dir, CsvFile);
        if (!p.GetValue(Fresh) && File.Exists(optionsPath))
        {
            if (File.ReadAllText(optionsPath) != recordJson)
                throw new OptionException($"--run: '{dir}' holds a landscape measured with other options or weights ({optionsPath}); give the same options to continue it, or --fresh to start over.");
            if (File.Exists(csvPath)) done = ReadCsv(csvPath);
        }

        var console = env.Console;
        console.WriteLine($"cudaswa landscape: {deviceDescription}; {run.Model} of {dir}; {DataSources.Describe(settings, train, test)}");
        DeviceChoice.ForwardNotices(backend, m => console.WriteLine(m));
        if (small && p.GetValue(Rays) is null && p.GetValue(Steps) is null && p.GetValue(SegmentPoints) is null && p.GetValue(TrainPoints) is null)
            console.WriteLine($"A small run ({train.Count:N0} training images): defaults scaled to {options.Rays} rays x {options.Steps} steps, " +
                $"{options.SegmentPoints} segment points, {options.TrainSubset:N0} training images per point (the paper-scale defaults are 10 x 10, 21, 5,000).");
        console.WriteLine(FormattableString.Invariant(
            $"{landscape.MeasurementCount} points (each: BN recompute over {train.Count:N0} images ({landscape.RecomputeMode}), {options.TrainSubset:N0} training and {test.Count:N0} test images); ") +
            FormattableString.Invariant($"|w_SWA| = {landscape.SwaNorm:0.###}, |w_SGD - w_SWA| = {landscape.SegmentLength:0.###}, rays to distance {landscape.MaxDistance:0.###}") +
            (options.FilterNormalized ? " (filter-normalised)" : "") + (done.Count > 0 ? $"; continuing: {done.Count} rows already in {CsvFile}" : ""));

        if (done.Count == 0)
            foreach (var stale in new[] { CsvFile, PngFile, TextFile }) File.Delete(Path.Combine(dir, stale)); // an earlier landscape with other options
        AtomicFile.WriteAllText(optionsPath, recordJson);
        var rows = new List<LandscapePoint>(done);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var sinceLine = System.Diagnostics.Stopwatch.StartNew();
        bool first = true;
        var points = landscape.Run(done,
            measured: r => { rows.AddRange(r); WriteCsv(csvPath, rows); },
            progress: (i, total, what) =>
            {
                // The first point, the last, and otherwise one line at most every 10 s: small runs
                // measure many points a second, and a log needs where it stands, not every step.
                if (what == "done" || !(first || i + 1 == total || sinceLine.Elapsed >= ProgressInterval)) return;
                first = false;
                sinceLine.Restart();
                console.WriteLine($"  [{i + 1}/{total}] {what}  ({clock.Elapsed:mm\\:ss})");
            },
            env.Cancel.Token);
        if (env.Cancel.IsCancellationRequested)
        {
            console.WriteLine($"Stopped; {rows.Count} rows are in {csvPath}. Continue with: cudaswa landscape --run {dir} (same options).");
            return ExitCodes.Interrupted;
        }
        WriteCsv(csvPath, points);
        var summary = LossLandscape.Summarize(points, options);
        string text = Describe(summary, options, landscape, state);
        AtomicFile.WriteAllText(Path.Combine(dir, TextFile), text);
        LandscapePlot.Write(Path.Combine(dir, PngFile), points, landscape.MaxDistance, options, run.Model);
        console.Write(new Text(text));
        ContentManifest.Record(dir, CsvFile, PngFile, TextFile, OptionsFile);
        console.WriteLine($"{CsvFile}, {PngFile} and {TextFile} are in {dir}");
        return ExitCodes.Ok;
    }

    /// <summary>landscape.json: what an earlier landscape of the run was measured with (a continuation must match it).</summary>
    public sealed record LandscapeRecord(LandscapeOptions Options, string Checkpoint);

    private static float[] LoadParameters(Layers.Network net, string path)
    {
        using var parameters = net.CreateParameterArena();
        using var buffers = net.CreateBufferArena();
        ModelWeights.Load(SafeTensors.Read(path), parameters, buffers, path);
        return parameters.ToHost();
    }

    private static string Describe(LandscapeSummary s, LandscapeOptions o, LossLandscape l, TrainingState state)
    {
        var c = CultureInfo.InvariantCulture;
        string Width(double? w, int beyond, string who) => w is null
            ? $"train loss along every ray from {who} stayed within +{o.WidthThreshold.ToString(c)} of its own up to distance {l.MaxDistance.ToString("0.###", c)}: width > {l.MaxDistance.ToString("0.###", c)}"
            : $"width of {who}: {w.Value.ToString("0.###", c)} (mean distance along {o.Rays - beyond} of {o.Rays} rays at which the train loss first rises by {o.WidthThreshold.ToString(c)} nats" +
              (beyond > 0 ? $"; {beyond} more stayed below up to {l.MaxDistance.ToString("0.###", c)}" : "") + ")";
        var sb = new StringBuilder();
        sb.AppendLine(Width(s.SwaWidth, s.SwaRaysBeyond, "SWA"));
        sb.AppendLine(Width(s.SgdWidth, s.SgdRaysBeyond, "SGD"));
        sb.AppendLine(string.Create(c, $"segment w(t) = t*w_SGD + (1-t)*w_SWA, t = {o.SegmentFrom}..{o.SegmentTo}: lowest test error {100 * s.BestTestError:F2}% at t = {s.BestT:0.###}"));
        var last = state.History.LastOrDefault();
        if (s.SwaOnSegment is { } swa)
        {
            string recorded = last?.Average is { } a ? string.Create(c, $"{100 * (1 - a.Accuracy):F2}% (loss {a.Loss:F6})") : "not recorded";
            sb.AppendLine(string.Create(c, $"  t = 0 (SWA, BN recomputed as the run did): test error {100 * swa.TestError:F2}% (loss {swa.TestLoss:F6}); the run's own SWA evaluation: {recorded}"));
        }
        if (s.SgdOnSegment is { } sgd)
        {
            string own = last?.Trained is { } t ? string.Create(c, $"{100 * (1 - t.Accuracy):F2}% (loss {t.Loss:F6})") : "not recorded";
            sb.AppendLine(string.Create(c, $"  t = 1 (SGD, BN recomputed the same way): test error {100 * sgd.TestError:F2}% (loss {sgd.TestLoss:F6}); the SGD model with its training-time BN statistics: {own}"));
        }
        return sb.ToString();
    }

    private const string CsvHeader = "kind,ray,position,train_loss,train_error,test_loss,test_error";

    private static void WriteCsv(string path, IEnumerable<LandscapePoint> rows)
    {
        var sb = new StringBuilder(CsvHeader).Append('\n');
        foreach (var r in rows)
            sb.Append(string.Join(",", r.Kind, r.Ray.ToString(CultureInfo.InvariantCulture), R(r.Position), R(r.TrainLoss), R(r.TrainError), R(r.TestLoss), R(r.TestError))).Append('\n');
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    private static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The rows of an earlier landscape.csv; anything malformed is an error naming the file and line.</summary>
    public static List<LandscapePoint> ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != CsvHeader) throw new DataFormatException($"'{path}' does not start with the header '{CsvHeader}'; remove it or pass --fresh.");
        var rows = new List<LandscapePoint>();
        for (int i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            var f = lines[i].Split(',');
            double D(int k) => double.Parse(f[k], NumberStyles.Float, CultureInfo.InvariantCulture);
            try
            {
                if (f.Length != 7 || f[0] is not (LandscapePoint.RaySwa or LandscapePoint.RaySgd or LandscapePoint.Segment)) throw new FormatException();
                rows.Add(new LandscapePoint(f[0], int.Parse(f[1], CultureInfo.InvariantCulture), D(2), D(3), D(4), D(5), D(6)));
            }
            catch (FormatException)
            {
                throw new DataFormatException($"'{path}' line {i + 1} is not a landscape row ({CsvHeader}): '{lines[i]}'; remove the file or pass --fresh.");
            }
        }
        return rows;
    }
}
