using System.Globalization;

namespace CudaSwa.Cli.Output;

/// <summary>Small pieces of English the messages share.</summary>
internal static class Wording
{
    /// <summary>"1 epoch", "3 epochs": a count with its noun in the right number (nouns that take -s).</summary>
    public static string Count(long n, string noun) => n.ToString("N0", CultureInfo.InvariantCulture) + " " + (n == 1 ? noun : noun + "s");
}
