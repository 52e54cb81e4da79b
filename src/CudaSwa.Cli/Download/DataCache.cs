using System.Runtime.InteropServices;

namespace CudaSwa.Cli.Download;

/// <summary>
/// The per-user folder downloaded datasets live in: $CUDASWA_DATA when set, else the platform's
/// cache folder ($XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on macOS,
/// %LOCALAPPDATA% on Windows) + "cudaswa".
/// </summary>
internal static class DataCache
{
    /// <summary>The environment variable that moves the cache.</summary>
    public const string Variable = "CUDASWA_DATA";

    public static string Root(Func<string, string?> variables)
    {
        if (variables(Variable) is { Length: > 0 } set) return Path.GetFullPath(set);
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            return Path.Combine(variables("LOCALAPPDATA") is { Length: > 0 } local ? local : Path.Combine(home, "AppData", "Local"), "cudaswa", "cache");
        if (RuntimeInformation.IsOSPlatform(OSPlatform.OSX))
            return Path.Combine(home, "Library", "Caches", "cudaswa");
        return Path.Combine(variables("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(home, ".cache"), "cudaswa");
    }

    /// <summary>How the help text names the default: the rule, not this machine's path.</summary>
    public const string Described = "$CUDASWA_DATA, else the user's cache folder + cudaswa (~/.cache/cudaswa on Linux)";
}
