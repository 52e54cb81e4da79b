using System.CommandLine;
using System.Text.RegularExpressions;

namespace CudaSwa.Cli.Options;

/// <summary>
/// System.CommandLine's parse errors in plain words: a value of the wrong type says what the option
/// expects ("--epochs expects a whole number, got 'abc'"); an unknown option or command names the
/// nearest known one ("did you mean --epochs?"), and the value that followed an unknown option is
/// not reported a second time.
/// </summary>
internal static partial class ParseErrorText
{
    [GeneratedRegex(@"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'\.$")]
    private static partial Regex Conversion();

    [GeneratedRegex(@"^Unrecognized command or argument '(.*)'\.$")]
    private static partial Regex Unrecognized();

    /// <summary>One sentence per problem of <paramref name="parse"/>, which parsed <paramref name="args"/>.</summary>
    public static IEnumerable<string> Describe(ParseResult parse, IReadOnlyList<string> args)
    {
        var command = parse.CommandResult.Command;
        var unknown = parse.Errors.Select(e => Unrecognized().Match(e.Message)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        foreach (var error in parse.Errors)
        {
            if (Conversion().Match(error.Message) is { Success: true } c)
            {
                yield return $"{c.Groups[2].Value} expects {Expected(c.Groups[3].Value)}, got '{c.Groups[1].Value}'.";
                continue;
            }
            if (Unrecognized().Match(error.Message) is { Success: true } u)
            {
                string word = u.Groups[1].Value;
                int at = IndexOf(args, word);
                if (!word.StartsWith('-') && at > 0 && unknown.Contains(args[at - 1]) && args[at - 1].StartsWith('-')) continue; // the value of an unknown option
                bool option = word.StartsWith('-');
                var candidates = option
                    ? command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name))
                    : command.Subcommands.Where(s => !s.Hidden).Select(s => s.Name);
                string what = option ? $"an option of `{CommandPath(parse)}`" : command.Subcommands.Count > 0 ? $"a command of `{CommandPath(parse)}`" : $"an argument of `{CommandPath(parse)}`";
                yield return Nearest(word, candidates) is string near
                    ? $"'{word}' is not {what}; did you mean {(option ? near : $"'{near}'")}?"
                    : $"'{word}' is not {what}; `{CommandPath(parse)} --help` lists them.";
                continue;
            }
            // An unknown word where the command belongs already says what is wrong.
            if (error.Message == "Required command was not provided." && unknown.Count > 0) continue;
            yield return error.Message;
        }
    }

    private static int IndexOf(IReadOnlyList<string> args, string word)
    {
        for (int i = 0; i < args.Count; i++) if (args[i] == word) return i;
        return -1;
    }

    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(r.Command is RootCommand ? "cudaswa" : r.Command.Name);
        names.Reverse();
        return string.Join(" ", names);
    }

    /// <summary>What a value of the .NET type <paramref name="type"/> (as System.CommandLine names it) looks like.</summary>
    private static string Expected(string type)
    {
        var inner = Regex.Match(type, @"\[System\.(\w+)\]$") is { Success: true } m ? m.Groups[1].Value : type.Replace("System.", "", StringComparison.Ordinal);
        return inner switch
        {
            "Int16" or "Int32" or "Int64" => "a whole number",
            "UInt16" or "UInt32" or "UInt64" => "a whole number, 0 or more",
            "Single" or "Double" or "Decimal" => "a number",
            "Boolean" => "true or false",
            _ => $"a value of type {inner}",
        };
    }

    /// <summary>The candidate closest to <paramref name="word"/> (optimal string alignment distance) when it is close enough to be a typo: 1 edit for short words, 2 from 5 letters on.</summary>
    internal static string? Nearest(string word, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates.Distinct(StringComparer.Ordinal))
        {
            int d = Distance(word.ToLowerInvariant(), c.ToLowerInvariant());
            if (d < bestDistance) (best, bestDistance) = (c, d);
        }
        int allowed = word.TrimStart('-').Length >= 5 ? 2 : 1;
        return bestDistance <= allowed ? best : null;
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1); // a swapped pair
            }
        return d[a.Length, b.Length];
    }
}
