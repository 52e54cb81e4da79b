namespace CudaSwa.Training;

/// <summary>One row of metrics.csv: what happened in one epoch.</summary>
public sealed record EpochRecord
{
    public int Epoch { get; init; }
    public double LearningRate { get; init; }
    public double TrainLoss { get; init; }
    public double TrainAccuracy { get; init; }
    public double? TestLoss { get; init; }
    public double? TestAccuracy { get; init; }
    public long AveragedModels { get; init; }
    public double? SwaTestLoss { get; init; }
    public double? SwaTestAccuracy { get; init; }
    public int EnsembleSnapshots { get; init; }
    public double? EnsembleTestLoss { get; init; }
    public double? EnsembleTestAccuracy { get; init; }
    public double TrainSeconds { get; init; }
    public double BnRecomputeSeconds { get; init; }
    public double EpochSeconds { get; init; }
    public double ImagesPerSecond { get; init; }
}

/// <summary>A line of the final SGD vs SWA vs ensemble table.</summary>
public sealed record ResultRow(string Method, double? TestLoss, double? TestAccuracy, string Note);

/// <summary>summary.json: the outcome of a run, like the paper's result tables.</summary>
public sealed record RunSummary
{
    public string Outcome { get; init; } = "";
    public string Model { get; init; } = "";
    public string Data { get; init; } = "";
    public string Device { get; init; } = "";
    public int EpochsCompleted { get; init; }
    public double TotalSeconds { get; init; }
    public List<ResultRow> Results { get; init; } = [];
    public TrainingOptions Options { get; init; } = new();
}

public enum RunOutcome
{
    Completed,
    Interrupted,
    Diverged,
}

/// <summary>What a <see cref="Trainer"/> reports while it runs.</summary>
public sealed class TrainerEvents
{
    public Action<string>? Message { get; set; }
    public Action<int, int, int>? EpochStarted { get; set; }          // epoch, first batch, batches
    public Action<IterationProgress>? Progress { get; set; }
    public Action<int, int>? BatchCompleted { get; set; }             // epoch, batch (after every step)
    public Action<string, int, int>? Phase { get; set; }              // name, done, total
    public Action<EpochRecord>? EpochCompleted { get; set; }
}

public readonly record struct IterationProgress(int Epoch, int Batch, int Batches, double Loss, double Accuracy, double ImagesPerSecond, double LearningRate);
