using CudaSwa.IO;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>
/// calibration.png: the reliability diagram of every row of the final table (confidence vs
/// accuracy per non-empty bin, one line per method) against the diagonal of perfect calibration,
/// with each method's ECE in its legend (ScottPlot).
/// </summary>
public static class CalibrationPlot
{
    public static void Write(string path, IReadOnlyList<ResultRow> results, RunSettings settings)
    {
        var rows = results.Where(r => r.Calibration is not null).ToList();
        if (rows.Count == 0) return;
        var plot = new ScottPlot.Plot();
        var diagonal = plot.Add.Line(0, 0, 100, 100);
        diagonal.LinePattern = ScottPlot.LinePattern.Dotted;
        diagonal.LegendText = "perfect calibration";
        foreach (var r in rows)
        {
            var bins = r.Calibration!.Bins.Where(b => b.Count > 0).ToList();
            var s = plot.Add.Scatter(bins.Select(b => 100 * b.MeanConfidence).ToArray(), bins.Select(b => 100 * b.Accuracy).ToArray());
            s.LegendText = $"{r.Method} (ECE {100 * r.Calibration.Ece:F2}%)";
            s.LineWidth = 2;
            s.MarkerSize = 5;
        }
        string data = settings.DataDir is null ? "synthetic data" : settings.Dataset.ToString().ToUpperInvariant();
        plot.Title($"{settings.Training.Model} on {data}: reliability ({rows[0].Calibration!.Bins.Count} confidence bins)");
        plot.Axes.Bottom.Label.Text = "confidence (%)";
        plot.Axes.Left.Label.Text = "accuracy (%)";
        plot.Axes.SetLimits(0, 100, 0, 100);
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        byte[] png = plot.GetImageBytes(700, 640, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, png);
    }
}
