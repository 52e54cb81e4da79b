namespace CudaSwa.Cli.Output;

/// <summary>
/// What every plot shares: one colour per model (SGD is the same blue in curves.png,
/// calibration.png, landscape.png and experiment.png), the legend outside the data area, and
/// labelled marker lines whose labels sit inside the data area — never over tick labels, never
/// past the frame.
/// </summary>
internal static class PlotStyle
{
    public static readonly ScottPlot.Color Sgd = ScottPlot.Color.FromHex("#1f77b4");
    public static readonly ScottPlot.Color Swa = ScottPlot.Color.FromHex("#2ca02c");
    public static readonly ScottPlot.Color Ema = ScottPlot.Color.FromHex("#9467bd");
    public static readonly ScottPlot.Color Swag = ScottPlot.Color.FromHex("#d62728");
    public static readonly ScottPlot.Color Lawa = ScottPlot.Color.FromHex("#8c564b");
    public static readonly ScottPlot.Color Ensemble = ScottPlot.Color.FromHex("#ff7f0e");
    private static readonly ScottPlot.Color Other = ScottPlot.Color.FromHex("#7f7f7f");

    /// <summary>The colour of the model a table row, series or legend names ("SGD", "SWA (BN recomputed)", "Ensemble", ...).</summary>
    public static ScottPlot.Color ModelColor(string name)
    {
        string n = name.TrimStart().ToUpperInvariant();
        if (n.StartsWith("SGD", StringComparison.Ordinal) || n.StartsWith("SWAP", StringComparison.Ordinal)) return Sgd;
        if (n.StartsWith("SWAG", StringComparison.Ordinal)) return Swag;
        if (n.StartsWith("SWA", StringComparison.Ordinal)) return Swa;
        if (n.StartsWith("EMA", StringComparison.Ordinal)) return Ema;
        if (n.StartsWith("LAWA", StringComparison.Ordinal)) return Lawa;
        if (n.Contains("ENSEMBLE", StringComparison.Ordinal)) return Ensemble;
        return Other;
    }

    /// <summary>
    /// Dotted vertical lines at each x with its label at the top of the data area: right of the line
    /// in the left half, left of it in the right half, each next label one row lower so that close
    /// lines' labels do not overlap. Call after every series is added: it fixes the axis limits
    /// (autoscaled to the data) so the labels' positions hold when the plot is rendered.
    /// </summary>
    public static void MarkLines(ScottPlot.Plot plot, IReadOnlyList<(double X, string Label)> lines)
    {
        if (lines.Count == 0) return;
        plot.Axes.AutoScale();
        var limits = plot.Axes.GetLimits();
        double left = Math.Min(limits.Left, lines.Min(l => l.X)), right = Math.Max(limits.Right, lines.Max(l => l.X));
        double pad = (right - left) * 0.02;
        plot.Axes.SetLimits(Math.Min(limits.Left, left - pad), Math.Max(limits.Right, right + pad), limits.Bottom, limits.Top);
        double middle = (left + right) / 2;
        int row = 0;
        foreach (var (x, label) in lines.OrderBy(l => l.X))
        {
            var line = plot.Add.VerticalLine(x);
            line.LinePattern = ScottPlot.LinePattern.Dotted;
            line.Color = ScottPlot.Colors.Gray;
            var text = plot.Add.Text(label, x, limits.Top);
            bool rightHalf = x > middle;
            text.Alignment = rightHalf ? ScottPlot.Alignment.UpperRight : ScottPlot.Alignment.UpperLeft;
            text.LabelFontSize = 12;
            text.LabelFontColor = ScottPlot.Colors.DimGray;
            text.LabelBackgroundColor = ScottPlot.Colors.White.WithAlpha(0.8);
            text.LabelPadding = 2;
            text.OffsetX = rightHalf ? -4 : 4;
            text.OffsetY = 4 + 20 * row++;
        }
    }

    /// <summary>The legend to the right of the data area, where it covers neither data nor labels.</summary>
    public static void LegendOutside(ScottPlot.Plot plot) => plot.ShowLegend(ScottPlot.Edge.Right);
}
