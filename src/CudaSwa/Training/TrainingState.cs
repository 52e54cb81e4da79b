using System.Text.Json;
using System.Text.Json.Serialization;

namespace CudaSwa.Training;

/// <summary>
/// state.json: where a run stands, enough to continue it bit for bit — the options, the next
/// (epoch, batch) to run, the global step (keys dropout), the partial epoch's loss/accuracy sums,
/// how many models were averaged and snapshots ensembled, the metrics so far, and the checkpoint
/// folder that holds the matching weights, momentum, average and ensemble.
/// </summary>
public sealed record TrainingState
{
    /// <summary>The format version this build writes and reads.</summary>
    public const int CurrentVersion = 1;

    /// <summary>Format version of the file.</summary>
    public int Version { get; init; } = CurrentVersion;
    /// <summary>The run's training options.</summary>
    public TrainingOptions Options { get; init; } = new();
    /// <summary>The next epoch to run, from 0.</summary>
    public int NextEpoch { get; init; }
    /// <summary>The next batch to run in <see cref="NextEpoch"/> (0 at an epoch boundary).</summary>
    public int NextBatch { get; init; }
    /// <summary>The number of data-parallel ranks the run trains on (1: one process); a resume needs the same number.</summary>
    public int Ranks { get; init; } = 1;
    /// <summary>Training steps done so far; keys the dropout masks.</summary>
    public long GlobalStep { get; init; }
    /// <summary>Sum of the training losses of the batches already done in <see cref="NextEpoch"/>.</summary>
    public float PartialLossSum { get; init; }
    /// <summary>Correct training predictions of the batches already done in <see cref="NextEpoch"/>.</summary>
    public float PartialCorrect { get; init; }
    /// <summary>
    /// A data-parallel run stopped mid-epoch: each rank's own partial [loss sum, correct] in rank
    /// order (rank r at 2r, 2r+1), so every rank continues its own float sums exactly; null otherwise.
    /// </summary>
    public IReadOnlyList<float>? PartialRankSums { get; init; }
    /// <summary>Whether the run stopped inside SWAP's phase 2, where every rank's model is its own.</summary>
    [JsonIgnore]
    internal bool StoppedInSwapPhase2 => Options.SwapPhase2 is int swap && (NextEpoch > swap || (NextEpoch == swap && NextBatch > 0));

    /// <summary>Models averaged so far.</summary>
    public long AveragedModels { get; init; }
    /// <summary>Snapshots in the prediction ensemble so far.</summary>
    public int EnsembleSnapshots { get; init; }
    /// <summary>Wall time of the run so far in seconds, across resumes.</summary>
    public double ElapsedSeconds { get; init; }
    /// <summary>The checkpoint folder with the matching weights, relative to the run folder.</summary>
    public string CheckpointFolder { get; init; } = "";
    /// <summary>
    /// The checkpoint committed before <see cref="CheckpointFolder"/>, kept (with its own state
    /// inside) where every rank of a run keeps checkpoints of its own (SWAP), so ranks whose last
    /// saves differ by one can all go back to the position before; null where none is kept.
    /// </summary>
    public string? PreviousCheckpointFolder { get; init; }
    /// <summary>
    /// The checkpoint folder's files (weights, momentum, average, ...) by name, each with its size
    /// and xxHash128, recorded when the checkpoint was written and checked before a resume uses it;
    /// null in runs saved before checkpoints carried them.
    /// </summary>
    public IReadOnlyDictionary<string, FileDigest>? Files { get; init; }
    /// <summary>Description of the backend the run last used.</summary>
    public string Device { get; init; } = "";

    /// <summary>Sizes and a hash of the labels of the data the run trains on; a resume on other data is refused.</summary>
    public string DataFingerprint { get; init; } = "";
    /// <summary>When the state was saved: UTC, ISO 8601.</summary>
    public string SavedAt { get; init; } = "";
    /// <summary>One record per finished epoch.</summary>
    public List<EpochRecord> History { get; init; } = [];

    /// <summary>The settings of the application running the trainer (<see cref="Trainer.HostSettings"/>), kept as they were given.</summary>
    public System.Text.Json.Nodes.JsonObject? HostSettings { get; init; }

    /// <summary>The state as indented snake_case JSON, the state.json format.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, TrainingJsonContext.Default.TrainingState);

    /// <summary>
    /// Parses state.json text read from <paramref name="source"/> (named in errors); throws
    /// <see cref="CudaSwa.Data.DataFormatException"/> for invalid JSON or another format version.
    /// </summary>
    public static TrainingState FromJson(string json, string source)
    {
        TrainingState? state;
        try
        {
            // Runs saved by earlier versions name some options otherwise (TrainingOptions.Upgrade).
            var node = System.Text.Json.Nodes.JsonNode.Parse(json);
            (node as System.Text.Json.Nodes.JsonObject)?.Remove(CheckpointIntegrity.StateHashField); // checked by CheckpointIntegrity before
            if (node?["options"] is System.Text.Json.Nodes.JsonObject o) node["options"] = TrainingOptions.Upgrade(o);
            if (node?["history"] is System.Text.Json.Nodes.JsonArray history) UpgradeHistory(history, node["options"]);
            state = node.Deserialize(TrainingJsonContext.Default.TrainingState);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new Data.DataFormatException($"'{source}' is not a valid state.json: {e.Message}");
        }
        if (state is null) throw new Data.DataFormatException($"'{source}' is empty.");
        if (state.Version != CurrentVersion)
            throw new Data.DataFormatException($"'{source}' has state version {state.Version}; this build reads version {CurrentVersion}.");
        return state;
    }

    /// <summary>
    /// Epoch records saved before they held a list of scores kept them as columns (test_loss,
    /// swa_test_loss, ensemble_test_loss, ... — swa_ also for EMA and LAWA): moved into "scores"
    /// under the names the run's method gives them now, so old runs resume with their history whole.
    /// </summary>
    private static void UpgradeHistory(System.Text.Json.Nodes.JsonArray history, System.Text.Json.Nodes.JsonNode? options)
    {
        string? averageName = null;
        foreach (var record in history.OfType<System.Text.Json.Nodes.JsonObject>())
        {
            if (record.ContainsKey("scores")) continue;
            var scores = new System.Text.Json.Nodes.JsonArray();
            foreach (var (prefix, model) in new[] { ("", ScoredModel.Trained), ("swa_", ScoredModel.Average), ("ensemble_", ScoredModel.Ensemble) })
            {
                var (loss, accuracy, ece, brier) = (record[prefix + "test_loss"], record[prefix + "test_accuracy"], record[prefix + "test_ece"], record[prefix + "test_brier"]);
                foreach (var column in new[] { "test_loss", "test_accuracy", "test_ece", "test_brier" }) record.Remove(prefix + column);
                if (loss is null || accuracy is null) continue;
                averageName ??= (options?.Deserialize(TrainingJsonContext.Default.TrainingOptions) ?? new TrainingOptions()).CreateAveragingOptions().CreateMethod().AverageName;
                scores.Add((System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
                {
                    ["model"] = model.ToString(),
                    ["name"] = model switch { ScoredModel.Trained => "SGD", ScoredModel.Average => averageName, _ => "Ensemble" },
                    ["loss"] = loss.DeepClone(),
                    ["accuracy"] = accuracy.DeepClone(),
                    ["ece"] = ece?.DeepClone(),
                    ["brier"] = brier?.DeepClone(),
                });
            }
            record["scores"] = scores;
        }
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(TrainingState))]
[JsonSerializable(typeof(TrainingOptions))]
internal sealed partial class TrainingJsonContext : JsonSerializerContext;
