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

public enum RunOutcome
{
    Completed,
    Interrupted,
    Diverged,
}

/// <summary>
/// What a <see cref="Trainer"/> reports while it runs, as typed records. Handlers run on the
/// training thread between steps: keep them short (a progress bar, a log line).
/// </summary>
public sealed class TrainerEvents
{
    /// <summary>A sentence for the user: an interruption, a divergence.</summary>
    public Action<string>? Message { get; set; }

    /// <summary>An epoch begins (mid-epoch when resuming).</summary>
    public Action<EpochStart>? EpochStarted { get; set; }

    /// <summary>Running loss, accuracy and speed of the epoch, a few times a second.</summary>
    public Action<IterationProgress>? Progress { get; set; }

    /// <summary>After every training step.</summary>
    public Action<BatchDone>? BatchCompleted { get; set; }

    /// <summary>Work between epochs: "test", "bn-recompute", "swa-test", "checkpoint".</summary>
    public Action<PhaseProgress>? Phase { get; set; }

    /// <summary>An epoch finished, with its metrics.</summary>
    public Action<EpochRecord>? EpochCompleted { get; set; }
}

/// <summary>An epoch begins at <paramref name="FirstBatch"/> of <paramref name="Batches"/> (0 unless resumed mid-epoch); epochs count from 0.</summary>
/// <param name="Epoch">The epoch, from 0.</param>
/// <param name="FirstBatch">The first batch to run.</param>
/// <param name="Batches">Batches per epoch.</param>
public sealed record EpochStart(int Epoch, int FirstBatch, int Batches);

/// <summary>One training step done.</summary>
/// <param name="Epoch">The epoch, from 0.</param>
/// <param name="Batch">The batch just trained, from 0.</param>
public sealed record BatchDone(int Epoch, int Batch);

/// <summary>Progress of a phase between epochs.</summary>
/// <param name="Name">"test", "bn-recompute", "swa-test" or "checkpoint".</param>
/// <param name="Done">Units done.</param>
/// <param name="Total">Units in all.</param>
public sealed record PhaseProgress(string Name, int Done, int Total);

/// <summary>Where an epoch stands.</summary>
/// <param name="Epoch">The epoch, from 0.</param>
/// <param name="Batch">Batches done in this epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="Loss">Mean training loss of the epoch so far.</param>
/// <param name="Accuracy">Training accuracy of the epoch so far.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch so far.</param>
/// <param name="LearningRate">The current learning rate.</param>
public readonly record struct IterationProgress(int Epoch, int Batch, int Batches, double Loss, double Accuracy, double ImagesPerSecond, double LearningRate);
