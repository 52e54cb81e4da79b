using CudaSwa.Cli;
using CudaSwa.Cli.Output;
using CudaSwa.Evaluation;
using CudaSwa.Experiments;
using CudaSwa.Landscape;
using CudaSwa.Training;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// Every plot rendered from generated results and checked as drawn: each model has one colour in
/// every plot, marker-line labels lie inside the data area (so they cover no tick label and stay
/// in the frame), reliability bins show their counts and empty bins are left out, and the
/// landscape's ray panel carries the test error too.
/// </summary>
public class PlotTests
{
    private static ScottPlot.PixelRect Render(ScottPlot.Plot plot, int width, int height)
    {
        var png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        Assert.That(png.Length, Is.GreaterThan(1000), "an image was rendered");
        return plot.RenderManager.LastRender.DataRect;
    }

    /// <summary>Every text label drawn lies wholly inside the data area.</summary>
    private static void AssertLabelsInsideDataArea(ScottPlot.Plot plot, ScottPlot.PixelRect data, int expected)
    {
        var labels = plot.GetPlottables().OfType<ScottPlot.Plottables.Text>().ToList();
        Assert.That(labels, Has.Count.EqualTo(expected), "labels drawn");
        foreach (var t in labels)
        {
            var r = t.LabelStyle.LastRenderPixelRect;
            Assert.That(r.Width, Is.GreaterThan(5), $"'{t.LabelText}' was drawn");
            Assert.That(r.Left >= data.Left && r.Right <= data.Right && r.Top >= data.Top && r.Bottom <= data.Bottom, Is.True,
                $"label '{t.LabelText}' at {r} lies inside the data area {data}: off the tick labels and inside the frame");
        }
        for (int i = 0; i < labels.Count; i++)
            for (int j = i + 1; j < labels.Count; j++)
            {
                var a = labels[i].LabelStyle.LastRenderPixelRect;
                var b = labels[j].LabelStyle.LastRenderPixelRect;
                bool overlap = a.Left < b.Right && b.Left < a.Right && a.Top < b.Bottom && b.Top < a.Bottom;
                Assert.That(overlap, Is.False, $"labels '{labels[i].LabelText}' and '{labels[j].LabelText}' overlap");
            }
    }

    private static ScottPlot.Color ColorOf(ScottPlot.Plot plot, string legendStart) =>
        plot.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().First(s => s.LegendText.StartsWith(legendStart, StringComparison.Ordinal)).Color;

    private static EpochRecord Epoch(int e, double sgd, double? swa, double? ens) => new()
    {
        Epoch = e,
        Scores = [new ModelScore(ScoredModel.Trained, "SGD", 1, sgd, null, null),
                  .. swa is double s ? new[] { new ModelScore(ScoredModel.Average, "SWA", 1, s, null, null) } : [],
                  .. ens is double n ? new[] { new ModelScore(ScoredModel.Ensemble, "Ensemble", 1, n, null, null) } : []],
    };

    private static RunSettings Settings(int? swaStart = 8) =>
        new() { Training = new TrainingOptions { Model = "resnet20", Epochs = 10, SwaStart = swaStart, BnRecompute = CudaSwa.Averaging.BatchNormRecomputeMode.Exact } };

    [Test]
    public void CurvesUseTheModelColoursAndTheirLabelStaysInTheDataArea()
    {
        var rng = new Fresh().Random;
        var history = Enumerable.Range(1, 10).Select(e => Epoch(e, 0.5 + 0.04 * e * rng.NextDouble(), e > 8 ? 0.9 : null, e > 8 ? 0.88 : null)).ToList();
        var plot = CurvesPlot.Build(history, Settings())!;
        var data = Render(plot, CurvesPlot.Width, CurvesPlot.Height);
        AssertLabelsInsideDataArea(plot, data, expected: 1);
        Assert.That(ColorOf(plot, "SGD"), Is.EqualTo(PlotStyle.Sgd));
        Assert.That(ColorOf(plot, "SWA"), Is.EqualTo(PlotStyle.Swa));
        Assert.That(ColorOf(plot, "prediction ensemble"), Is.EqualTo(PlotStyle.Ensemble));
        // The label at the right edge (averaging starting in the last epoch) still fits.
        var late = CurvesPlot.Build(history, Settings(swaStart: 10) with { })!;
        AssertLabelsInsideDataArea(late, Render(late, CurvesPlot.Width, CurvesPlot.Height), expected: 1);
    }

    [Test]
    public void ReliabilityShowsBinCountsHidesEmptyBinsAndUsesTheModelColours()
    {
        var fresh = new Fresh();
        int n = 2000, classes = 10;
        var probs = new float[n * classes];
        var labels = fresh.Ints(n, 0, classes);
        for (int i = 0; i < n; i++)
        {
            // Confident predictions mostly: a few bins are full, the low-confidence ones sparse or empty.
            int guess = fresh.Random.NextDouble() < 0.8 ? labels[i] : fresh.Random.Next(classes);
            float top = 0.55f + 0.45f * (float)Math.Pow(fresh.Random.NextDouble(), 0.3);
            for (int c = 0; c < classes; c++) probs[i * classes + c] = c == guess ? top : (1 - top) / (classes - 1);
        }
        var metrics = CalibrationMetrics.Compute(probs, labels, classes);
        Assert.That(metrics.Bins.Any(b => b.Count == 0), Is.True, "the data has empty bins");
        var rows = new[] { new ResultRow("SGD", 1, 0.8, "") { Calibration = metrics }, new ResultRow("SWA", 1, 0.8, "") { Calibration = metrics }, new ResultRow("Ensemble", 1, 0.8, "") { Calibration = metrics } };
        var plot = CalibrationPlot.Build(rows, Settings())!;
        Render(plot, CalibrationPlot.Width, CalibrationPlot.Height);
        var nonEmpty = metrics.Bins.Where(b => b.Count > 0).ToList();
        var markers = plot.GetPlottables().OfType<ScottPlot.Plottables.Marker>().ToList();
        Assert.That(markers, Has.Count.EqualTo(3 * nonEmpty.Count), "one marker per non-empty bin and model; none for empty bins");
        int most = nonEmpty.Max(b => b.Count);
        var sgd = markers.Where(m => m.Color == PlotStyle.Sgd).ToList();
        Assert.That(sgd, Has.Count.EqualTo(nonEmpty.Count), "SGD's markers in SGD's colour");
        for (int i = 0; i < nonEmpty.Count; i++)
        {
            Assert.That(sgd[i].MarkerSize, Is.EqualTo(CalibrationPlot.MarkerSize(nonEmpty[i].Count, most)).Within(1e-4), $"bin {i}: size from its count");
            bool sparse = nonEmpty[i].Count < 0.01 * n;
            Assert.That(sgd[i].MarkerShape, Is.EqualTo(sparse ? ScottPlot.MarkerShape.OpenCircle : ScottPlot.MarkerShape.FilledCircle), $"bin {i} ({nonEmpty[i].Count} images)");
        }
        var byCount = nonEmpty.Select((b, i) => (b.Count, sgd[i].MarkerSize)).OrderBy(p => p.Count).ToList();
        Assert.That(byCount.Zip(byCount.Skip(1)).All(p => p.First.MarkerSize <= p.Second.MarkerSize), Is.True, "fuller bins have larger markers");
        Assert.That(byCount[0].MarkerSize, Is.LessThan(byCount[^1].MarkerSize), "and the sizes differ");
        Assert.That(ColorOf(plot, "SWA"), Is.EqualTo(PlotStyle.Swa));
        Assert.That(ColorOf(plot, "Ensemble"), Is.EqualTo(PlotStyle.Ensemble));
    }

    [Test]
    public void LandscapeRaysShowTestErrorAndTheSegmentLabelsStayInside()
    {
        var rng = new Fresh().Random;
        var points = new List<LandscapePoint>();
        foreach (var kind in new[] { LandscapePoint.RaySwa, LandscapePoint.RaySgd })
            for (int ray = 0; ray < 3; ray++)
                for (int k = 0; k <= 5; k++)
                    points.Add(new LandscapePoint(kind, ray, k * 2.0, 0.1 + k * k * rng.NextDouble(), 0.1, 0.5, 0.1 + 0.1 * k * rng.NextDouble()));
        for (int k = 0; k <= 10; k++) points.Add(new LandscapePoint(LandscapePoint.Segment, 0, -0.5 + 0.2 * k, 0.2, 0.1, 0.4, 0.1 + 0.01 * k));
        var options = new LandscapeOptions { Rays = 3 };
        var rays = LandscapePlot.Rays(points, 10, options, "resnet20");
        Render(rays, LandscapePlot.Width, LandscapePlot.Height);
        var series = rays.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().ToList();
        foreach (var (name, color) in new[] { ("SWA", PlotStyle.Swa), ("SGD", PlotStyle.Sgd) })
        {
            var error = series.Single(s => s.LegendText.StartsWith($"test error from {name}", StringComparison.Ordinal));
            Assert.That(error.Axes.YAxis, Is.SameAs(rays.Axes.Right), $"{name}'s test error on the right axis");
            Assert.That(error.Color, Is.EqualTo(color), $"{name}'s colour");
            var expected = points.Where(p => p.Kind == (name == "SWA" ? LandscapePoint.RaySwa : LandscapePoint.RaySgd)).GroupBy(p => p.Position).OrderBy(g => g.Key)
                .Select(g => 100 * g.Average(p => p.TestError)).ToArray();
            Assert.That(error.Data.GetScatterPoints().Select(c => c.Y).ToArray(), Is.EqualTo(expected).Within(1e-9), $"{name}: mean test error over the rays");
            Assert.That(ColorOf(rays, $"train loss from {name}"), Is.EqualTo(color));
        }
        var segment = LandscapePlot.Segment(points, "resnet20");
        AssertLabelsInsideDataArea(segment, Render(segment, LandscapePlot.Width, LandscapePlot.Height), expected: 2);
    }

    [Test]
    public void ExperimentBudgetLabelsStayInsideAndApartAndUseTheModelColours()
    {
        var sgd = new TrainingOptions { Model = "resnet20", Epochs = 20, SgdOnly = true, SwaStart = null };
        var swa = new TrainingOptions { Model = "resnet20", Epochs = 20, SwaStart = 10 };
        var plan = ExperimentPlan.Create(sgd, swa, [1, 1.25, 1.5], [1, 2]);
        var rng = new Fresh().Random;
        List<IReadOnlyList<EpochRecord>> Runs(int epochs, bool average) => Enumerable.Range(0, 2)
            .Select(_ => (IReadOnlyList<EpochRecord>)Enumerable.Range(1, epochs).Select(e => Epoch(e, 0.5 + 0.02 * e * rng.NextDouble(), average && e > 10 ? 0.9 : null, null)).ToList()).ToList();
        var histories = new Dictionary<string, List<IReadOnlyList<EpochRecord>>> { [ExperimentPlan.SgdKind] = Runs(20, false), [ExperimentPlan.SwaKind] = Runs(30, true) };
        var plot = ExperimentPlot.Build(plan, histories, "resnet20");
        AssertLabelsInsideDataArea(plot, Render(plot, ExperimentPlot.Width, ExperimentPlot.Height), expected: 3);
        Assert.That(ColorOf(plot, "SGD"), Is.EqualTo(PlotStyle.Sgd));
        Assert.That(ColorOf(plot, "SWA"), Is.EqualTo(PlotStyle.Swa));
    }

    [Test]
    public void EveryModelHasItsOwnColour()
    {
        string[] models = ["SGD", "SWA", "EMA", "SWAG", "LAWA", "Ensemble"];
        var colors = models.Select(PlotStyle.ModelColor).ToList();
        Assert.That(colors.Distinct().Count(), Is.EqualTo(models.Length), "distinct");
        Assert.That(PlotStyle.ModelColor("SWA (BN recomputed)"), Is.EqualTo(PlotStyle.Swa));
        Assert.That(PlotStyle.ModelColor("prediction ensemble"), Is.EqualTo(PlotStyle.Ensemble));
        Assert.That(PlotStyle.ModelColor("SWAG"), Is.Not.EqualTo(PlotStyle.Swa), "SWAG is not SWA");
    }
}
