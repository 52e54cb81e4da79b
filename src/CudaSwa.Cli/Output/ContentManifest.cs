using System.Text;
using CudaSwa.Training;
using CudaSwa.Util;

namespace CudaSwa.Cli.Output;

/// <summary>
/// checksums.xxh128 beside the outputs that are not safetensors (a landscape's CSV, picture, text
/// and options; an experiment's plan, tables and picture): one line per file, "HASH  NAME", with
/// the xxHash128 of its bytes, rewritten atomically whenever those outputs are. `cudaswa verify`
/// checks it; a file changed, truncated or missing afterwards is reported by name.
/// </summary>
internal static class ContentManifest
{
    public const string FileName = "checksums.xxh128";

    /// <summary>Records the current content of <paramref name="files"/> (names inside <paramref name="dir"/>), keeping the other files' lines.</summary>
    public static void Record(string dir, params string[] files)
    {
        var lines = Read(dir) ?? new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in files)
        {
            string path = Path.Combine(dir, name);
            if (File.Exists(path)) lines[name] = CheckpointIntegrity.Digest(path).Xxh128;
            else lines.Remove(name);
        }
        var text = new StringBuilder();
        foreach (var (name, hash) in lines) text.Append(hash).Append("  ").Append(name).Append('\n');
        AtomicFile.WriteAllText(Path.Combine(dir, FileName), text.ToString());
    }

    /// <summary>The recorded hashes by file name; null when <paramref name="dir"/> has no manifest.</summary>
    public static SortedDictionary<string, string>? Read(string dir)
    {
        string path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) return null;
        var lines = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadAllLines(path))
        {
            int gap = line.IndexOf("  ", StringComparison.Ordinal);
            if (gap == 32) lines[line[(gap + 2)..]] = line[..32];
        }
        return lines;
    }

    /// <summary>Each recorded file with what is wrong with it (null: as recorded).</summary>
    public static IEnumerable<(string File, string? Problem)> Check(string dir)
    {
        foreach (var (name, hash) in Read(dir) ?? [])
        {
            string path = Path.Combine(dir, name);
            if (!File.Exists(path)) yield return (name, "missing");
            else yield return (name, CheckpointIntegrity.Digest(path).Xxh128 == hash ? null : "damaged: content hash mismatch (changed since it was written)");
        }
    }
}
