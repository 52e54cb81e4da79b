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
    public const int CurrentVersion = 1;

    public int Version { get; init; } = CurrentVersion;
    public TrainingOptions Options { get; init; } = new();
    public int NextEpoch { get; init; }
    public int NextBatch { get; init; }
    public long GlobalStep { get; init; }
    public float PartialLossSum { get; init; }
    public float PartialCorrect { get; init; }
    public long AveragedModels { get; init; }
    public int EnsembleSnapshots { get; init; }
    public double ElapsedSeconds { get; init; }
    public string CheckpointFolder { get; init; } = "";
    public string Device { get; init; } = "";

    /// <summary>Sizes and a hash of the labels of the data the run trains on; a resume on other data is refused.</summary>
    public string DataFingerprint { get; init; } = "";
    public string SavedAt { get; init; } = "";
    public List<EpochRecord> History { get; init; } = [];

    /// <summary>The settings of the application running the trainer (<see cref="Trainer.HostSettings"/>), kept as they were given.</summary>
    public System.Text.Json.Nodes.JsonObject? HostSettings { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, TrainingJsonContext.Default.TrainingState);

    public static TrainingState FromJson(string json, string source)
    {
        TrainingState? state;
        try
        {
            // Runs saved before BN-update "none" was a mode stored it as a separate flag.
            var node = System.Text.Json.Nodes.JsonNode.Parse(json);
            if (node?["options"] is System.Text.Json.Nodes.JsonObject o && o["no_bn_update"]?.GetValue<bool>() == true)
                o["bn_update"] = "None";
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
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(TrainingState))]
[JsonSerializable(typeof(TrainingOptions))]
internal sealed partial class TrainingJsonContext : JsonSerializerContext;
