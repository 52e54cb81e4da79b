using CudaSwa.Training;

namespace CudaSwa.Experiments;

/// <summary>One training run of an experiment: a seed and a kind ("sgd" or "swa") with its options.</summary>
/// <param name="Seed">The run's seed.</param>
/// <param name="Kind"><see cref="ExperimentPlan.SgdKind"/> or <see cref="ExperimentPlan.SwaKind"/>.</param>
/// <param name="Options">The run's options (its seed included).</param>
public sealed record ExperimentMember(ulong Seed, string Kind, TrainingOptions Options)
{
    /// <summary>The member's run folder inside the experiment folder: seed-&lt;seed&gt;-&lt;kind&gt;.</summary>
    public string Folder => $"seed-{Seed}-{Kind}";
}

/// <summary>
/// The SWA paper's table as a plan (Izmailov et al. 2018, Table 1): per seed, one SGD run with the
/// SGD budget B and its schedule, and ONE SWA run to the largest budget whose averaged model is
/// evaluated (BN recomputed) as it passes each budget's epoch round(b·B) — the SWA schedule depends
/// on swa_start, not on the number of epochs, so each budget's value equals a separate run with
/// that many epochs.
/// </summary>
public sealed record ExperimentPlan
{
    /// <summary>The kind of the SGD members.</summary>
    public const string SgdKind = "sgd";
    /// <summary>The kind of the SWA members.</summary>
    public const string SwaKind = "swa";

    /// <summary>The SGD member's options (Epochs is the budget B; the seed is set per member).</summary>
    public required TrainingOptions Sgd { get; init; }
    /// <summary>The SWA member's options (Epochs is the largest budget's epoch; EvaluateAt holds every budget's).</summary>
    public required TrainingOptions Swa { get; init; }
    /// <summary>Budgets as multiples of B, ascending (the paper's: 1, 1.25, 1.5).</summary>
    public required IReadOnlyList<double> Budgets { get; init; }
    /// <summary>The seeds, one SGD and one SWA run each.</summary>
    public required IReadOnlyList<ulong> Seeds { get; init; }

    /// <summary>The SGD budget B in epochs.</summary>
    public int BudgetEpochs => Sgd.Epochs;

    /// <summary>The epoch (from 1) of budget <paramref name="budget"/>: round(budget·B), halves away from zero (1.25 × 150 = 187.5 → 188).</summary>
    public int EpochOf(double budget) => (int)Math.Round(budget * BudgetEpochs, MidpointRounding.AwayFromZero);

    /// <summary>Every member, seed by seed (SGD, then SWA).</summary>
    public IEnumerable<ExperimentMember> Members =>
        Seeds.SelectMany(s => new[] { new ExperimentMember(s, SgdKind, Sgd with { Seed = s }), new ExperimentMember(s, SwaKind, Swa with { Seed = s }) });

    /// <summary>
    /// A plan from the options of an SGD run with the budget (<paramref name="sgd"/>: SGD only,
    /// Epochs = B) and of an SWA run (<paramref name="swa"/>: its averaging start, learning rates,
    /// ...; its Epochs and EvaluateAt are set here from the budgets). Throws
    /// <see cref="ArgumentException"/> naming what is wrong.
    /// </summary>
    public static ExperimentPlan Create(TrainingOptions sgd, TrainingOptions swa, IReadOnlyList<double> budgets, IReadOnlyList<ulong> seeds)
    {
        ArgumentNullException.ThrowIfNull(sgd);
        ArgumentNullException.ThrowIfNull(swa);
        ArgumentNullException.ThrowIfNull(budgets);
        ArgumentNullException.ThrowIfNull(seeds);
        if (!sgd.SgdOnly) throw new ArgumentException("The SGD member must be an SGD-only run (SgdOnly).", nameof(sgd));
        if (swa.SgdOnly || swa.SwaStart is null) throw new ArgumentException("The SWA member must average (SgdOnly off, SwaStart set).", nameof(swa));
        if (budgets.Count == 0) throw new ArgumentException("No budgets given.", nameof(budgets));
        for (int i = 0; i < budgets.Count; i++)
        {
            if (!(budgets[i] > 0) || !double.IsFinite(budgets[i])) throw new ArgumentException($"Budget {budgets[i]} is not a positive number.", nameof(budgets));
            if (i > 0 && !(budgets[i] > budgets[i - 1])) throw new ArgumentException($"Budgets must ascend; got {string.Join(", ", budgets)}.", nameof(budgets));
        }
        if (seeds.Count == 0) throw new ArgumentException("No seeds given.", nameof(seeds));
        if (seeds.Distinct().Count() != seeds.Count) throw new ArgumentException($"Seeds must differ; got {string.Join(", ", seeds)}.", nameof(seeds));
        var plan = new ExperimentPlan { Sgd = sgd, Swa = swa, Budgets = [.. budgets], Seeds = [.. seeds] };
        var epochs = budgets.Select(plan.EpochOf).ToArray();
        if (epochs[0] <= swa.SwaStart)
            throw new ArgumentException($"The smallest budget ({budgets[0]} x {plan.BudgetEpochs} = epoch {epochs[0]}) must come after the averaging starts (after epoch {swa.SwaStart}).", nameof(budgets));
        if (epochs.Distinct().Count() != epochs.Length)
            throw new ArgumentException($"Budgets {string.Join(", ", budgets)} of {plan.BudgetEpochs} epochs round to the same epoch ({string.Join(", ", epochs)}).", nameof(budgets));
        plan = plan with { Swa = swa with { Epochs = epochs[^1], EvaluateAt = epochs } };
        // The model name is checked where the network is built (a zoo model, or the caller's own).
        plan.Sgd.Validate(zooModel: false);
        plan.Swa.Validate(zooModel: false);
        return plan;
    }
}
