using CudaSwa.IO;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>
/// calibration.png: the reliability diagram of every row of the final table — each non-empty
/// confidence bin's accuracy against its mean confidence, one line per method in the method's
/// colour — against the diagonal of perfect calibration, with each method's ECE in its legend.
/// A bin's marker area grows with the images in it, and bins holding under 1% of the test set are
/// drawn hollow, so sparse bins do not look as meaningful as full ones; empty bins are left out.
/// </summary>
public static class CalibrationPlot
{
    internal const int Width = 900, Height = 640;
    /// <summary>Marker diameters in pixels: the smallest bin's and the fullest's.</summary>
    internal const float SmallestMarker = 3, LargestMarker = 16;

    public static void Write(string path, IReadOnlyList<ResultRow> results, RunSettings settings)
    {
        if (Build(results, settings) is not { } plot) return;
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));
    }

    /// <summary>The marker diameter of a bin of <paramref name="count"/> images when the fullest holds <paramref name="most"/>: area proportional to the count.</summary>
    internal static float MarkerSize(int count, int most) =>
        SmallestMarker + (LargestMarker - SmallestMarker) * (float)Math.Sqrt((double)count / Math.Max(most, 1));

    /// <summary>The plot, or null when no row has calibration metrics.</summary>
    internal static ScottPlot.Plot? Build(IReadOnlyList<ResultRow> results, RunSettings settings)
    {
        var rows = results.Where(r => r.Calibration is not null).ToList();
        if (rows.Count == 0) return null;
        var plot = new ScottPlot.Plot();
        var diagonal = plot.Add.Line(0, 0, 100, 100);
        diagonal.LinePattern = ScottPlot.LinePattern.Dotted;
        diagonal.Color = ScottPlot.Colors.Gray;
        diagonal.LegendText = "perfect calibration";
        int most = rows.SelectMany(r => r.Calibration!.Bins).Max(b => b.Count);
        foreach (var r in rows)
        {
            var color = PlotStyle.ModelColor(r.Method);
            var bins = r.Calibration!.Bins.Where(b => b.Count > 0).ToList();
            int total = r.Calibration.Bins.Sum(b => b.Count);
            var line = plot.Add.Scatter(bins.Select(b => 100 * b.MeanConfidence).ToArray(), bins.Select(b => 100 * b.Accuracy).ToArray());
            line.LegendText = $"{r.Method} (ECE {100 * r.Calibration.Ece:F2}%)";
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 0;
            foreach (var b in bins)
            {
                var marker = plot.Add.Marker(100 * b.MeanConfidence, 100 * b.Accuracy);
                marker.MarkerSize = MarkerSize(b.Count, most);
                marker.Color = color;
                bool sparse = b.Count < 0.01 * total;
                marker.MarkerShape = sparse ? ScottPlot.MarkerShape.OpenCircle : ScottPlot.MarkerShape.FilledCircle;
            }
        }
        string data = settings.DataDir is null ? "synthetic data" : settings.Dataset.ToString().ToUpperInvariant();
        plot.Title($"{settings.Training.Model} on {data}: reliability ({rows[0].Calibration!.Bins.Count} confidence bins)");
        plot.Axes.Bottom.Label.Text = "confidence (%) — marker area: images in the bin; hollow: under 1% of them";
        plot.Axes.Left.Label.Text = "accuracy (%)";
        plot.Axes.SetLimits(0, 100, 0, 100);
        PlotStyle.LegendOutside(plot);
        return plot;
    }
}
