using CudaSwa.IO;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>curves.png: test error of the SGD model, the averaged model and the ensemble per evaluated epoch (ScottPlot).</summary>
public static class CurvesPlot
{
    public static void Write(string path, IReadOnlyList<EpochRecord> history, RunSettings settings)
    {
        if (Build(history, settings) is not { } plot) return;
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));
    }

    internal const int Width = 1000, Height = 540;

    /// <summary>The plot, or null when no epoch was evaluated.</summary>
    internal static ScottPlot.Plot? Build(IReadOnlyList<EpochRecord> history, RunSettings settings)
    {
        var options = settings.Training;
        var evaluated = history.Where(r => r.Trained is not null).ToList();
        if (evaluated.Count == 0) return null;
        var plot = new ScottPlot.Plot();
        ScottPlot.Plottables.Scatter? Series(Func<EpochRecord, ModelScore?> score, string label)
        {
            var rows = evaluated.Where(r => score(r) is not null).ToList();
            if (rows.Count == 0) return null;
            var s = plot.Add.Scatter(rows.Select(r => (double)r.Epoch).ToArray(), rows.Select(r => 100 * (1 - score(r)!.Accuracy)).ToArray());
            s.LegendText = label;
            s.Color = PlotStyle.ModelColor(score(rows[0])!.Name);
            s.LineWidth = 2;
            s.MarkerSize = 5;
            return s;
        }
        Series(r => r.Trained, "SGD");
        string averageName = evaluated.Select(r => r.Average?.Name).LastOrDefault(n => n is not null) ?? "SWA";
        Series(r => r.Average, averageName + (options.BnRecompute is null ? " (BN statistics averaged)" : " (BN recomputed)"));
        if (Series(r => r.Ensemble, "prediction ensemble") is { } ensemble)
        {
            ensemble.LinePattern = ScottPlot.LinePattern.Dashed;
            ensemble.LineWidth = 1;
            ensemble.MarkerSize = 4;
        }
        string data = settings.DataDir is null ? "synthetic data" : settings.Dataset.ToString().ToUpperInvariant();
        plot.Title($"{options.Model} on {data}: test error");
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Axes.Left.Label.Text = "test error (%)";
        if (options.Averaging && options.SwaStart is int start)
            PlotStyle.MarkLines(plot, [(start, "averaging starts")]);
        PlotStyle.LegendOutside(plot);
        return plot;
    }
}
