using CudaSwa.IO;
using CudaSwa.Training;

namespace CudaSwa.Cli.Output;

/// <summary>curves.png: test error of the SGD model, the averaged model and the ensemble per evaluated epoch (ScottPlot).</summary>
public static class CurvesPlot
{
    public static void Write(string path, IReadOnlyList<EpochRecord> history, TrainingOptions options)
    {
        var evaluated = history.Where(r => r.TestAccuracy is not null).ToList();
        if (evaluated.Count == 0) return;
        var plot = new ScottPlot.Plot();
        var sgd = plot.Add.Scatter(evaluated.Select(r => (double)r.Epoch).ToArray(), evaluated.Select(r => 100 * (1 - r.TestAccuracy!.Value)).ToArray());
        sgd.LegendText = "SGD";
        sgd.LineWidth = 2;
        sgd.MarkerSize = 5;
        var swa = evaluated.Where(r => r.SwaTestAccuracy is not null).ToList();
        if (swa.Count > 0)
        {
            var s = plot.Add.Scatter(swa.Select(r => (double)r.Epoch).ToArray(), swa.Select(r => 100 * (1 - r.SwaTestAccuracy!.Value)).ToArray());
            s.LegendText = options.Average.ToString().ToUpperInvariant() + (options.NoBnUpdate ? " (BN statistics averaged)" : " (BN recomputed)");
            s.LineWidth = 2;
            s.MarkerSize = 5;
        }
        var ens = evaluated.Where(r => r.EnsembleTestAccuracy is not null).ToList();
        if (ens.Count > 0)
        {
            var e = plot.Add.Scatter(ens.Select(r => (double)r.Epoch).ToArray(), ens.Select(r => 100 * (1 - r.EnsembleTestAccuracy!.Value)).ToArray());
            e.LegendText = "prediction ensemble";
            e.LinePattern = ScottPlot.LinePattern.Dashed;
            e.MarkerSize = 4;
        }
        if (options.Averaging && options.SwaStart is int start)
        {
            var line = plot.Add.VerticalLine(start);
            line.LinePattern = ScottPlot.LinePattern.Dotted;
            line.Text = "averaging starts";
        }
        string data = options.DataDir is null ? "synthetic data" : options.Dataset.ToString().ToUpperInvariant();
        plot.Title($"{options.Model} on {data}: test error");
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Axes.Left.Label.Text = "test error (%)";
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        byte[] png = plot.GetImageBytes(900, 540, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, png);
    }
}
