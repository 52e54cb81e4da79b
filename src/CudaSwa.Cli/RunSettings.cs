using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using CudaSwa.Training;

namespace CudaSwa.Cli;

/// <summary>Which CIFAR a run uses (the embedded synthetic data stands in for CIFAR-10).</summary>
public enum DatasetKind { Cifar10, Cifar100 }

/// <summary>
/// A `cudaswa train` run: the engine's <see cref="TrainingOptions"/> plus what only the program
/// decides — the data source and subsets, the device, TF32, the preset the options started
/// from. Saved with every checkpoint (the trainer's host settings), so a resume uses them again.
/// </summary>
public sealed partial record RunSettings
{
    /// <summary>The engine's options (saved separately, as state.json's "options").</summary>
    [JsonIgnore]
    public TrainingOptions Training { get; init; } = new();

    public string? Preset { get; init; }
    public DatasetKind Dataset { get; init; } = DatasetKind.Cifar10;

    /// <summary>Folder with CIFAR binaries; null means the embedded synthetic dataset.</summary>
    public string? DataDir { get; init; }

    public int SyntheticTrain { get; init; } = 8000;
    public int SyntheticTest { get; init; } = 2000;
    public int? TrainSubset { get; init; }
    public int? TestSubset { get; init; }
    public string Device { get; init; } = "auto";
    public bool Tf32 { get; init; }

    [JsonIgnore]
    public int NumClasses => Dataset == DatasetKind.Cifar10 ? 10 : 100;

    /// <summary>The largest synthetic set (its bytes must fit one array).</summary>
    public const int MaxSynthetic = 500_000;

    /// <summary>Checks every value, the engine's options included; an <see cref="OptionException"/> names the command-line option.</summary>
    public void Validate()
    {
        static void Fail(Options.Setting setting, string problem) => throw new OptionException($"{setting.Flag}: {problem}");
        if (SyntheticTrain > MaxSynthetic || SyntheticTest > MaxSynthetic)
            Fail(Options.SettingsTable.SyntheticTrain, $"the synthetic sets hold at most {MaxSynthetic:N0} images each; got {SyntheticTrain:N0} and {SyntheticTest:N0}.");
        if (SyntheticTrain < 20) Fail(Options.SettingsTable.SyntheticTrain, $"needs at least 20 images; got {SyntheticTrain}.");
        if (SyntheticTest < 10) Fail(Options.SettingsTable.SyntheticTest, $"needs at least 10 images; got {SyntheticTest}.");
        if (TrainSubset is < 2) Fail(Options.SettingsTable.TrainSubset, $"must be >= 2; got {TrainSubset}.");
        if (TestSubset is < 1) Fail(Options.SettingsTable.TestSubset, $"must be >= 1; got {TestSubset}.");
        if (Device is not ("auto" or "cpu" or "cuda") &&
            !(Device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(Device.AsSpan(5), System.Globalization.NumberStyles.None, null, out _)))
            Fail(Options.SettingsTable.Device, $"must be auto, cpu, cuda or cuda:N with N a device number (0, 1, ...); got '{Device}'.");
        try
        {
            Training.Validate();
        }
        catch (ArgumentException e)
        {
            throw ToOption(e);
        }
    }

    /// <summary>
    /// The command-line option behind each engine option that <see cref="TrainingOptions.Validate"/>
    /// can name (the only source of the messages <see cref="ToOption"/> translates).
    /// </summary>
    public static IReadOnlyDictionary<string, string> FlagOf => Options.SettingsTable.FlagOfProperty;

    [GeneratedRegex(@"\s*\(Parameter '[^']*'\)$")]
    private static partial Regex ParameterSuffix();

    /// <summary>Any property name of <see cref="FlagOf"/> as a whole word, longest first (SwaLrMin before SwaLr).</summary>
    private static readonly Regex PropertyName = new(@"\b(" + string.Join("|", FlagOf.Keys.OrderByDescending(k => k.Length)) + @")\b", RegexOptions.Compiled);

    /// <summary>An engine validation error in the program's language: "--flag: message", property names turned into flags.</summary>
    public static OptionException ToOption(ArgumentException e)
    {
        string message = ParameterSuffix().Replace(e.Message, "");
        message = PropertyName.Replace(message, m => FlagOf.TryGetValue(m.Value, out var f) ? f : m.Value);
        string flag = e.ParamName is not null && FlagOf.TryGetValue(e.ParamName, out var f) ? f : "options";
        // "--swa-start must be ..." names its flag already: no "--swa-start: " in front of it.
        return new OptionException(message.StartsWith(flag + " ", StringComparison.Ordinal) ? message : $"{flag}: {message}");
    }

    /// <summary>These settings as the trainer's host settings (JSON, state.json's names).</summary>
    public JsonObject ToJson() => (JsonObject)JsonSerializer.SerializeToNode(this, CliJsonContext.Default.RunSettings)!;

    /// <summary>
    /// The settings of a saved run: its host settings, or, for runs saved before the engine and the
    /// program kept separate settings, the same names inside its options.
    /// </summary>
    public static RunSettings FromState(TrainingState state, string statePath)
    {
        JsonNode? node = state.HostSettings;
        if (node is null)
            node = JsonNode.Parse(File.ReadAllText(statePath))?["options"];
        var settings = node?.Deserialize(CliJsonContext.Default.RunSettings) ?? new RunSettings();
        return settings with { Training = state.Options };
    }
}

/// <summary>A bad command-line option or option combination; the message names the option.</summary>
public sealed class OptionException(string message) : Exception(message);

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
    public RunSettings Settings { get; init; } = new();
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(RunSettings))]
[JsonSerializable(typeof(RunSummary))]
[JsonSerializable(typeof(Commands.LandscapeCommand.LandscapeRecord))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
