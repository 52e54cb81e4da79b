using CudaSwa.Training;

namespace CudaSwa.Experiments;

/// <summary>One cell of the table: test error (%) and NLL over the seeds.</summary>
/// <param name="Errors">Test error in % per seed (null where the member has not got there).</param>
/// <param name="Nlls">Test NLL per seed (null likewise).</param>
public sealed record ExperimentCell(IReadOnlyList<double?> Errors, IReadOnlyList<double?> Nlls)
{
    /// <summary>Seeds with a value.</summary>
    public int Count => Errors.Count(e => e is not null);
    /// <summary>Mean test error in % over the seeds with a value; null when none has.</summary>
    public double? MeanError => Mean(Errors);
    /// <summary>Sample standard deviation (n − 1) of the test error in %; null with fewer than two values.</summary>
    public double? StdError => Std(Errors);
    /// <summary>Mean test NLL.</summary>
    public double? MeanNll => Mean(Nlls);
    /// <summary>Sample standard deviation of the test NLL.</summary>
    public double? StdNll => Std(Nlls);

    private static double? Mean(IReadOnlyList<double?> v)
    {
        var x = v.Where(e => e is not null).Select(e => e!.Value).ToList();
        return x.Count == 0 ? null : x.Average();
    }

    private static double? Std(IReadOnlyList<double?> v)
    {
        var x = v.Where(e => e is not null).Select(e => e!.Value).ToList();
        if (x.Count < 2) return null;
        double m = x.Average();
        return Math.Sqrt(x.Sum(e => (e - m) * (e - m)) / (x.Count - 1));
    }
}

/// <summary>The paper's table for one model and dataset: SGD, then SWA at each budget; cells over the seeds.</summary>
/// <param name="Model">The model.</param>
/// <param name="BudgetEpochs">The SGD budget B in epochs.</param>
/// <param name="Columns">"SGD", then "SWA 1 budget", "SWA 1.25 budgets", ...</param>
/// <param name="ColumnEpochs">The epoch each column's value comes from.</param>
/// <param name="Cells">One per column.</param>
/// <param name="Seeds">The seeds, in the order of every cell's per-seed lists.</param>
public sealed record ExperimentTable(string Model, int BudgetEpochs, IReadOnlyList<string> Columns, IReadOnlyList<int> ColumnEpochs,
    IReadOnlyList<ExperimentCell> Cells, IReadOnlyList<ulong> Seeds)
{
    /// <summary>The column heading of budget <paramref name="budget"/>.</summary>
    public static string BudgetColumn(double budget) =>
        $"SWA {budget.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)} budget{(budget == 1 ? "" : "s")}";

    /// <summary>
    /// The table from the members' saved states (state.json's history): the SGD column from each SGD
    /// run's evaluation at the budget epoch, each SWA column from the SWA run's averaged-model
    /// evaluation at that budget's epoch. A member that is missing or has not reached an epoch
    /// leaves its seed's value empty.
    /// </summary>
    public static ExperimentTable Aggregate(ExperimentPlan plan, IReadOnlyDictionary<(ulong Seed, string Kind), TrainingState> states)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(states);
        EpochRecord? At(ulong seed, string kind, int epoch) =>
            states.TryGetValue((seed, kind), out var s) ? s.History.FirstOrDefault(r => r.Epoch == epoch) : null;
        static double? Error(double? accuracy) => accuracy is double a ? 100 * (1 - a) : null;
        var columns = new List<string> { "SGD" };
        var epochs = new List<int> { plan.BudgetEpochs };
        var cells = new List<ExperimentCell>
        {
            new([.. plan.Seeds.Select(s => Error(At(s, ExperimentPlan.SgdKind, plan.BudgetEpochs)?.Trained?.Accuracy))],
                [.. plan.Seeds.Select(s => At(s, ExperimentPlan.SgdKind, plan.BudgetEpochs)?.Trained?.Loss)]),
        };
        foreach (double b in plan.Budgets)
        {
            int e = plan.EpochOf(b);
            columns.Add(BudgetColumn(b));
            epochs.Add(e);
            cells.Add(new([.. plan.Seeds.Select(s => Error(At(s, ExperimentPlan.SwaKind, e)?.Average?.Accuracy))],
                [.. plan.Seeds.Select(s => At(s, ExperimentPlan.SwaKind, e)?.Average?.Loss)]));
        }
        return new ExperimentTable(plan.Sgd.Model, plan.BudgetEpochs, columns, epochs, cells, plan.Seeds);
    }
}
