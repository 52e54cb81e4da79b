using CudaSwa.Experiments;
using CudaSwa.IO;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>
/// experiment.png: test error against the epoch for the SGD runs and for the SWA runs' averaged
/// model — the mean over the seeds, with a band from the lowest to the highest seed (ScottPlot) —
/// with each budget's epoch marked.
/// </summary>
public static class ExperimentPlot
{
    public static void Write(string path, ExperimentPlan plan, IReadOnlyList<string> folders, string label)
    {
        var histories = new Dictionary<string, List<IReadOnlyList<EpochRecord>>> { [ExperimentPlan.SgdKind] = [], [ExperimentPlan.SwaKind] = [] };
        foreach (var member in plan.Members)
        {
            var dir = folders.Select(f => Path.Combine(f, member.Folder)).FirstOrDefault(d => File.Exists(Path.Combine(d, Checkpoint.StateFile)));
            if (dir is not null) histories[member.Kind].Add(Checkpoint.ReadState(dir).History);
        }
        var plot = Build(plan, histories, label);
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));
    }

    internal const int Width = 1000, Height = 540;

    /// <summary>The plot of the members' histories by kind (SGD, SWA).</summary>
    internal static ScottPlot.Plot Build(ExperimentPlan plan, Dictionary<string, List<IReadOnlyList<EpochRecord>>> histories, string label)
    {
        var plot = new ScottPlot.Plot();
        void Series(string kind, Func<EpochRecord, double?> accuracy, string name, ScottPlot.Color color)
        {
            var byEpoch = histories[kind].SelectMany(h => h).Where(r => accuracy(r) is not null).GroupBy(r => r.Epoch).OrderBy(g => g.Key).ToList();
            if (byEpoch.Count == 0) return;
            double[] x = byEpoch.Select(g => (double)g.Key).ToArray();
            double[] Error(Func<IEnumerable<double>, double> f) => byEpoch.Select(g => f(g.Select(r => 100 * (1 - accuracy(r)!.Value)))).ToArray();
            if (histories[kind].Count > 1)
            {
                var band = plot.Add.FillY(x, Error(Enumerable.Min), Error(Enumerable.Max));
                band.FillStyle.Color = color.WithAlpha(0.2);
                band.LineStyle.Width = 0;
            }
            var mean = plot.Add.Scatter(x, Error(Enumerable.Average));
            mean.LegendText = $"{name} (mean over {Wording.Count(histories[kind].Count, "seed")})";
            mean.Color = color;
            mean.LineWidth = 2;
            mean.MarkerSize = 4;
        }
        Series(ExperimentPlan.SgdKind, r => r.Trained?.Accuracy, "SGD", PlotStyle.Sgd);
        Series(ExperimentPlan.SwaKind, r => r.Average?.Accuracy, "SWA (BN recomputed)", PlotStyle.Swa);
        plot.Title($"{label}: test error");
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Axes.Left.Label.Text = "test error (%)";
        PlotStyle.MarkLines(plot, plan.Budgets.Select(b => ((double)plan.EpochOf(b), ExperimentTable.BudgetColumn(b).Replace("SWA ", ""))).ToList());
        PlotStyle.LegendOutside(plot);
        return plot;
    }
}
