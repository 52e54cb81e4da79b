using System.CommandLine;
using System.Text.Json;

namespace CudaSwa.Cli.Options;

/// <summary>
/// One setting of a run, declared once: its flag (and the hidden older spellings that still work),
/// the property it sets (of the engine's <see cref="Training.TrainingOptions"/> or of
/// <see cref="RunSettings"/>), its help, and whether a resume may change it. The declaration makes
/// the System.CommandLine options, applies a given value over a preset's or a saved run's settings,
/// and names the flag in errors. Defaults and ranges are not restated here: they live in the
/// engine's option types, which check them.
/// </summary>
internal abstract class Setting
{
    protected Setting(string flag, string property, bool engine, bool resumeMayChange, string[] oldFlags)
    {
        Flag = flag;
        Property = property;
        IsEngineOption = engine;
        ResumeMayChange = resumeMayChange;
        OldFlags = oldFlags;
    }

    /// <summary>The command-line flag, e.g. --swa-lr.</summary>
    public string Flag { get; }

    /// <summary>Earlier spellings of the flag, accepted but not shown in --help (so existing command lines keep working).</summary>
    public IReadOnlyList<string> OldFlags { get; }

    /// <summary>The property the setting sets, as engine validation errors name it (e.g. SwaLr).</summary>
    public string Property { get; }

    /// <summary>The name state.json keeps the setting under (snake_case of <see cref="Property"/>).</summary>
    public string SavedName => JsonNamingPolicy.SnakeCaseLower.ConvertName(Property);

    /// <summary>Whether <see cref="Property"/> belongs to <see cref="Training.TrainingOptions"/> (else to <see cref="RunSettings"/>).</summary>
    public bool IsEngineOption { get; }

    /// <summary>Whether `train --resume` may give another value than the run was started with.</summary>
    public bool ResumeMayChange { get; }

    /// <summary>The option --help shows (one object, shared by every command that takes the setting).</summary>
    public abstract Option Option { get; }

    /// <summary>The option and its hidden old spellings: what a command adds.</summary>
    public abstract IEnumerable<Option> Options { get; }

    /// <summary><paramref name="settings"/> with the value given on the command line, if any.</summary>
    public abstract RunSettings Apply(ParseResult parse, RunSettings settings);

    /// <summary>
    /// How --help shows the value <paramref name="saved"/> (the setting's JSON value in a
    /// RunSettings or TrainingOptions), or null where there is nothing to show (no value; a switch).
    /// </summary>
    public virtual string? Show(System.Text.Json.Nodes.JsonNode? saved) => saved switch
    {
        null => null,
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue(out string? text) => text,
        _ => saved.ToJsonString(),
    };

    private bool _defaultShown;

    /// <summary>Adds " [default: X]" to the help of the flag, X as <see cref="Show"/> gives it; once.</summary>
    public void ShowDefault(System.Text.Json.Nodes.JsonNode? saved)
    {
        if (_defaultShown || Show(saved) is not string text) return;
        Option.Description += $" [default: {text}]";
        _defaultShown = true;
    }

    /// <summary>The flag and one hidden option per old spelling, all made by <paramref name="make"/>.</summary>
    protected Option<T>[] Make<T>(Func<string, Option<T>> make)
    {
        var options = new Option<T>[1 + OldFlags.Count];
        options[0] = make(Flag);
        for (int i = 0; i < OldFlags.Count; i++)
        {
            options[i + 1] = make(OldFlags[i]);
            options[i + 1].Hidden = true;
        }
        return options;
    }
}

/// <summary>A setting with a value (a number): applied when given.</summary>
internal sealed class ValueSetting<T> : Setting where T : struct
{
    private readonly Option<T?>[] _options;
    private readonly Func<RunSettings, T, RunSettings> _set;

    public ValueSetting(string flag, string property, string help, Func<RunSettings, T, RunSettings> set, bool engine = true, bool resumeMayChange = false,
        string? valueName = null, params string[] oldFlags)
        : base(flag, property, engine, resumeMayChange, oldFlags)
    {
        _options = Make(f => new Option<T?>(f) { Description = help, HelpName = valueName });
        _set = set;
    }

    public override Option Option => _options[0];
    public override IEnumerable<Option> Options => _options;
    /// <summary>The value given (under the flag or an old spelling), or null.</summary>
    public T? Get(ParseResult parse) => _options.Select(o => parse.GetValue(o)).FirstOrDefault(v => v is not null);
    public override RunSettings Apply(ParseResult parse, RunSettings settings) => Get(parse) is T v ? _set(settings, v) : settings;
}

/// <summary>A setting given as text (a folder, a device, a list), turned into its value by the setter.</summary>
internal sealed class TextSetting : Setting
{
    private readonly Option<string?>[] _options;
    private readonly Func<RunSettings, string, RunSettings> _set;

    public TextSetting(string flag, string property, string help, Func<RunSettings, string, RunSettings> set, bool engine = true, bool resumeMayChange = false,
        string? valueName = null, params string[] oldFlags)
        : base(flag, property, engine, resumeMayChange, oldFlags)
    {
        _options = Make(f => new Option<string?>(f) { Description = help, HelpName = valueName });
        _set = set;
    }

    public override Option Option => _options[0];
    public override IEnumerable<Option> Options => _options;
    /// <summary>The text given (under the flag or an old spelling), or null.</summary>
    public string? Get(ParseResult parse) => _options.Select(o => parse.GetValue(o)).FirstOrDefault(v => v is not null);
    public override RunSettings Apply(ParseResult parse, RunSettings settings) => Get(parse) is string v ? _set(settings, v) : settings;
}

/// <summary>A switch: given, it sets its value; absent, the preset's or saved run's value stays.</summary>
internal sealed class SwitchSetting : Setting
{
    private readonly Option<bool>[] _options;
    private readonly Func<RunSettings, RunSettings> _set;

    public SwitchSetting(string flag, string property, string help, Func<RunSettings, RunSettings> set, bool engine = true, bool resumeMayChange = false,
        params string[] oldFlags)
        : base(flag, property, engine, resumeMayChange, oldFlags)
    {
        _options = Make(f => new Option<bool>(f) { Description = help });
        _set = set;
    }

    public override Option Option => _options[0];
    public override IEnumerable<Option> Options => _options;
    /// <summary>A switch is off unless given: no default to show.</summary>
    public override string? Show(System.Text.Json.Nodes.JsonNode? saved) => null;
    /// <summary>Whether the switch was given (under the flag or an old spelling).</summary>
    public bool Get(ParseResult parse) => _options.Any(o => parse.GetValue(o));
    public override RunSettings Apply(ParseResult parse, RunSettings settings) => Get(parse) ? _set(settings) : settings;
}

/// <summary>A setting with named values (an enum, or null for "none"); another name is refused, listing the valid ones.</summary>
internal sealed class ChoiceSetting<T> : Setting
{
    private readonly Option<string?>[] _options;
    private readonly (string Name, T Value)[] _names;
    private readonly Func<RunSettings, T, RunSettings> _set;

    public ChoiceSetting(string flag, string property, string help, (string Name, T Value)[] names, Func<RunSettings, T, RunSettings> set,
        bool engine = true, bool resumeMayChange = false, params string[] oldFlags)
        : base(flag, property, engine, resumeMayChange, oldFlags)
    {
        _names = names;
        _options = Make(f => new Option<string?>(f) { Description = help, HelpName = string.Join("|", names.Select(n => n.Name)) });
        _set = set;
    }

    public override Option Option => _options[0];
    public override IEnumerable<Option> Options => _options;

    /// <summary>The value <paramref name="text"/> names; an <see cref="OptionException"/> naming the flag and the valid names otherwise.</summary>
    public T Parse(string text)
    {
        string name = text.Trim();
        foreach (var (n, v) in _names)
            if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) return v;
        throw new OptionException($"{Flag}: '{text}' is not valid; expected {string.Join(", ", _names.Select(n => n.Name))}.");
    }

    /// <summary>The name of the saved value (an enum's name as JSON keeps it, null for "none"), matched ignoring case and dashes.</summary>
    public override string? Show(System.Text.Json.Nodes.JsonNode? saved)
    {
        static string Plain(string s) => s.Replace("-", "", StringComparison.Ordinal).ToLowerInvariant();
        string? text = base.Show(saved);
        foreach (var (n, v) in _names)
            if (text is null ? v is null : Plain(n) == Plain(text) || (v is Enum e && Convert.ToInt64(e, System.Globalization.CultureInfo.InvariantCulture).ToString(System.Globalization.CultureInfo.InvariantCulture) == text))
                return n; // by name, or by number where the JSON keeps the enum as one
        return text;
    }

    private string? Given(ParseResult parse) => _options.Select(o => parse.GetValue(o)).FirstOrDefault(v => v is not null);

    /// <summary>The value given on the command line, or <paramref name="fallback"/>.</summary>
    public T Get(ParseResult parse, T fallback) => Given(parse) is string v ? Parse(v) : fallback;

    public override RunSettings Apply(ParseResult parse, RunSettings settings) => Given(parse) is string v ? _set(settings, Parse(v)) : settings;
}
