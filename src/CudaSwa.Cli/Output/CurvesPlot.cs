using CudaSwa.IO;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>curves.png: test error of the SGD model, the averaged model and the ensemble per evaluated epoch (ScottPlot).</summary>
public static class CurvesPlot
{
    public static void Write(string path, IReadOnlyList<EpochRecord> history, RunSettings settings)
    {
        var options = settings.Training;
        var evaluated = history.Where(r => r.Trained is not null).ToList();
        if (evaluated.Count == 0) return;
        var plot = new ScottPlot.Plot();
        ScottPlot.Plottables.Scatter? Series(Func<EpochRecord, double?> accuracy, string label)
        {
            var rows = evaluated.Where(r => accuracy(r) is not null).ToList();
            if (rows.Count == 0) return null;
            var s = plot.Add.Scatter(rows.Select(r => (double)r.Epoch).ToArray(), rows.Select(r => 100 * (1 - accuracy(r)!.Value)).ToArray());
            s.LegendText = label;
            s.LineWidth = 2;
            s.MarkerSize = 5;
            return s;
        }
        Series(r => r.Trained?.Accuracy, "SGD");
        string averageName = evaluated.Select(r => r.Average?.Name).LastOrDefault(n => n is not null) ?? "SWA";
        Series(r => r.Average?.Accuracy, averageName + (options.BnRecompute is null ? " (BN statistics averaged)" : " (BN recomputed)"));
        if (Series(r => r.Ensemble?.Accuracy, "prediction ensemble") is { } ensemble)
        {
            ensemble.LinePattern = ScottPlot.LinePattern.Dashed;
            ensemble.LineWidth = 1;
            ensemble.MarkerSize = 4;
        }
        if (options.Averaging && options.SwaStart is int start)
        {
            var line = plot.Add.VerticalLine(start);
            line.LinePattern = ScottPlot.LinePattern.Dotted;
            line.Text = "averaging starts";
        }
        string data = settings.DataDir is null ? "synthetic data" : settings.Dataset.ToString().ToUpperInvariant();
        plot.Title($"{options.Model} on {data}: test error");
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Axes.Left.Label.Text = "test error (%)";
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        byte[] png = plot.GetImageBytes(900, 540, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, png);
    }
}
