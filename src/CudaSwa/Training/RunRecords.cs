using System.Text.Json.Serialization;
using CudaSwa.Evaluation;

namespace CudaSwa.Training;

/// <summary>One row of metrics.csv: what happened in one epoch.</summary>
public sealed record EpochRecord
{
    /// <summary>The epoch, counted from 1.</summary>
    public int Epoch { get; init; }
    /// <summary>Learning rate of the epoch's last iteration.</summary>
    public double LearningRate { get; init; }
    /// <summary>Mean training loss per sample over the epoch.</summary>
    public double TrainLoss { get; init; }
    /// <summary>Training top-1 accuracy over the epoch, a fraction in [0, 1].</summary>
    public double TrainAccuracy { get; init; }
    /// <summary>
    /// The test-set scores of the epoch's models, each where it was evaluated: the trained (SGD)
    /// model, the average (SWA, EMA, LAWA; after its BN recompute) and the prediction ensemble.
    /// Empty when the epoch was not evaluated.
    /// </summary>
    public IReadOnlyList<ModelScore> Scores { get; init; } = [];
    /// <summary>Models averaged so far.</summary>
    public long AveragedModels { get; init; }
    /// <summary>Snapshots in the prediction ensemble so far.</summary>
    public int EnsembleSnapshots { get; init; }

    /// <summary>The score of <paramref name="model"/>, or null where it was not evaluated.</summary>
    public ModelScore? Score(ScoredModel model) => Scores.FirstOrDefault(s => s.Model == model);
    /// <summary>The trained (SGD) model's score; null when the epoch was not evaluated.</summary>
    [JsonIgnore] public ModelScore? Trained => Score(ScoredModel.Trained);
    /// <summary>The averaged model's score; null when not evaluated or nothing was averaged yet.</summary>
    [JsonIgnore] public ModelScore? Average => Score(ScoredModel.Average);
    /// <summary>The prediction ensemble's score; null when not evaluated or no snapshot yet.</summary>
    [JsonIgnore] public ModelScore? Ensemble => Score(ScoredModel.Ensemble);

    /// <summary>This record with <paramref name="score"/> in place of any earlier score of its model.</summary>
    public EpochRecord WithScore(ModelScore score) => this with { Scores = [.. Scores.Where(s => s.Model != score.Model), score] };

    /// <summary>Wall time of the epoch's training steps, in seconds.</summary>
    public double TrainSeconds { get; init; }
    /// <summary>Wall time of the averaged model's BN recompute and test, in seconds; 0 when not run.</summary>
    public double BnRecomputeSeconds { get; init; }
    /// <summary>Wall time of the epoch, training and evaluation (not the checkpoint), in seconds.</summary>
    public double EpochSeconds { get; init; }
    /// <summary>Training throughput of the epoch, in images per second.</summary>
    public double ImagesPerSecond { get; init; }
}

/// <summary>Which of a run's models a <see cref="ModelScore"/> belongs to.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ScoredModel>))]
public enum ScoredModel
{
    /// <summary>The model being trained (SGD).</summary>
    Trained,
    /// <summary>The averaged model (SWA, EMA, LAWA; SWAG's mean).</summary>
    Average,
    /// <summary>The prediction ensemble of the averaged snapshots.</summary>
    Ensemble,
}

/// <summary>One model's score on the test set at the end of an epoch.</summary>
/// <param name="Model">Which model.</param>
/// <param name="Name">Its name in tables and metrics columns: "SGD", "SWA", "EMA", "LAWA", "Ensemble".</param>
/// <param name="Loss">Mean test loss (the NLL).</param>
/// <param name="Accuracy">Test accuracy, a fraction in [0, 1].</param>
/// <param name="Ece">Expected calibration error (15 bins); null in runs saved before it was recorded.</param>
/// <param name="Brier">Brier score; null in runs saved before it was recorded.</param>
public sealed record ModelScore(ScoredModel Model, string Name, double Loss, double Accuracy, double? Ece, double? Brier);

/// <summary>A line of the final SGD vs SWA vs ensemble (vs SWAG) table.</summary>
/// <param name="Method">"SGD", "SWA" (or "EMA"), "Ensemble", "SWAG".</param>
/// <param name="TestLoss">Test loss (the NLL), or null where not evaluated.</param>
/// <param name="TestAccuracy">Test accuracy as a fraction, or null where not evaluated.</param>
/// <param name="Note">How the number came about (e.g. "average of 3 models, BN recomputed").</param>
public sealed record ResultRow(string Method, double? TestLoss, double? TestAccuracy, string Note)
{
    /// <summary>NLL, ECE, Brier score and reliability bins of the row's test-set probabilities; null where not evaluated.</summary>
    public CalibrationMetrics? Calibration { get; init; }
}

/// <summary>How <see cref="Trainer.Run"/> or <see cref="Trainer.RunEpoch"/> ended.</summary>
public enum RunOutcome
{
    /// <summary>The epochs asked for ran to the end (and were checkpointed when the run has a folder).</summary>
    Completed,
    /// <summary>Cancelled mid-epoch; the position reached was checkpointed (when the run has a folder), ready to resume.</summary>
    Interrupted,
    /// <summary>The loss, weights or BN statistics became NaN or Inf; training stopped and the last good checkpoint is kept.</summary>
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

    /// <summary>SWAP: called on every rank just before phase 3 averages the ranks' weights (the network still holds this rank's own).</summary>
    public Action<Layers.Network>? SwapAveraging { get; set; }
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
