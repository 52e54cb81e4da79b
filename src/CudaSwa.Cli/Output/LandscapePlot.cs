using CudaSwa.IO;
using CudaSwa.Landscape;
using SkiaSharp;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>
/// landscape.png: the SWA paper's two panels side by side (ScottPlot, joined with SkiaSharp). Left:
/// along the random rays from the SWA and the SGD solution against the distance, the train loss —
/// mean over the rays, with the band from the lowest to the highest ray — and the mean test error
/// (right axis, dashed), each model in its colour. Right: train loss and test error along
/// w(t) = t·w_SGD + (1−t)·w_SWA, with SWA (t = 0) and SGD (t = 1) marked.
/// </summary>
public static class LandscapePlot
{
    internal const int Width = 760, Height = 540;

    public static void Write(string path, IReadOnlyList<LandscapePoint> points, double maxDistance, LandscapeOptions options, string model)
    {
        using var rays = Decode(Rays(points, maxDistance, options, model).GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));
        using var segment = Decode(Segment(points, model).GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));
        using var surface = SKSurface.Create(new SKImageInfo(2 * Width, Height));
        surface.Canvas.Clear(SKColors.White);
        surface.Canvas.DrawBitmap(rays, 0, 0);
        surface.Canvas.DrawBitmap(segment, Width, 0);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.ToArray());
    }

    private static SKBitmap Decode(byte[] png) => SKBitmap.Decode(png);

    /// <summary>The left panel: train loss (band and mean) and mean test error along the rays from each solution.</summary>
    internal static ScottPlot.Plot Rays(IReadOnlyList<LandscapePoint> points, double maxDistance, LandscapeOptions options, string model)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (kind, name) in new[] { (LandscapePoint.RaySwa, "SWA"), (LandscapePoint.RaySgd, "SGD") })
        {
            var color = PlotStyle.ModelColor(name);
            var byDistance = points.Where(p => p.Kind == kind).GroupBy(p => p.Position).OrderBy(g => g.Key).ToList();
            if (byDistance.Count == 0) continue;
            double[] x = byDistance.Select(g => g.Key).ToArray();
            var band = plot.Add.FillY(x, byDistance.Select(g => g.Min(p => p.TrainLoss)).ToArray(), byDistance.Select(g => g.Max(p => p.TrainLoss)).ToArray());
            band.FillStyle.Color = color.WithAlpha(0.2);
            band.LineStyle.Width = 0;
            var mean = plot.Add.Scatter(x, byDistance.Select(g => g.Average(p => p.TrainLoss)).ToArray());
            mean.LegendText = $"train loss from {name} (mean, min-max of {options.Rays} rays)";
            mean.Color = color;
            mean.LineWidth = 2;
            mean.MarkerSize = 4;
            var error = plot.Add.Scatter(x, byDistance.Select(g => 100 * g.Average(p => p.TestError)).ToArray());
            error.LegendText = $"test error from {name} (%, mean, right axis)";
            error.Color = color;
            error.LinePattern = ScottPlot.LinePattern.Dashed;
            error.LineWidth = 2;
            error.MarkerSize = 0;
            error.Axes.YAxis = plot.Axes.Right;
        }
        plot.Title($"{model}: random rays{(options.FilterNormalized ? " (filter-normalised)" : "")}");
        plot.Axes.Bottom.Label.Text = "distance";
        plot.Axes.Left.Label.Text = "train loss";
        plot.Axes.Right.Label.Text = "test error (%)";
        plot.Axes.SetLimitsX(0, maxDistance);
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        return plot;
    }

    /// <summary>The right panel: train loss and test error along the segment from SWA (t = 0) to SGD (t = 1).</summary>
    internal static ScottPlot.Plot Segment(IReadOnlyList<LandscapePoint> points, string model)
    {
        var plot = new ScottPlot.Plot();
        var segment = points.Where(p => p.Kind == LandscapePoint.Segment).OrderBy(p => p.Position).ToList();
        double[] t = segment.Select(p => p.Position).ToArray();
        var loss = plot.Add.Scatter(t, segment.Select(p => p.TrainLoss).ToArray());
        loss.LegendText = "train loss (left axis)";
        loss.Color = ScottPlot.Colors.Black;
        loss.LineWidth = 2;
        var error = plot.Add.Scatter(t, segment.Select(p => 100 * p.TestError).ToArray());
        error.LegendText = "test error % (right axis)";
        error.Color = ScottPlot.Colors.Black;
        error.LinePattern = ScottPlot.LinePattern.Dashed;
        error.LineWidth = 2;
        error.Axes.YAxis = plot.Axes.Right;
        plot.Title($"{model}: w(t) = t·w_SGD + (1−t)·w_SWA");
        plot.Axes.Bottom.Label.Text = "t";
        plot.Axes.Left.Label.Text = "train loss";
        plot.Axes.Right.Label.Text = "test error (%)";
        PlotStyle.MarkLines(plot, [(0.0, "SWA"), (1.0, "SGD")]);
        plot.ShowLegend(ScottPlot.Alignment.LowerCenter);
        return plot;
    }
}
