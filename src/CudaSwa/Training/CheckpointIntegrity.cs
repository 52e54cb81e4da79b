using System.IO.Hashing;
using System.Text;
using System.Text.RegularExpressions;
using CudaSwa.Data;

namespace CudaSwa.Training;

/// <summary>A file's size and content hash (xxHash128, lowercase hex), as a checkpoint's state records them.</summary>
/// <param name="Bytes">Its length in bytes.</param>
/// <param name="Xxh128">xxHash128 of its bytes, 32 lowercase hex digits.</param>
public sealed record FileDigest(long Bytes, string Xxh128);

/// <summary>
/// How a checkpoint proves it is what was written. Every file of a checkpoint folder has its size
/// and xxHash128 in the state that commits it (<see cref="TrainingState.Files"/>); the state file
/// itself ends with <c>"state_xxh128"</c>, the hash of its own text with that value zeroed, so a
/// change anywhere in it — or in any file it lists — is found before anything is trusted.
/// Hashes are checked only; nothing here repairs or deletes a damaged file.
/// </summary>
public static class CheckpointIntegrity
{
    /// <summary>The field that seals a state file.</summary>
    public const string StateHashField = "state_xxh128";
    private static readonly string Zeros = new('0', 32);
    private static readonly Regex SealPattern = new($"\"{StateHashField}\": \"([0-9a-f]{{32}})\"", RegexOptions.CultureInvariant);

    /// <summary>xxHash128 of <paramref name="bytes"/> as 32 lowercase hex digits.</summary>
    public static string Hash(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(XxHash128.Hash(bytes));

    /// <summary>The size and xxHash128 of the file at <paramref name="path"/> (streamed: checkpoint files pass 2 GiB).</summary>
    public static FileDigest Digest(string path)
    {
        var hash = new XxHash128();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 20);
        hash.Append(stream);
        return new FileDigest(stream.Length, Convert.ToHexStringLower(hash.GetCurrentHash()));
    }

    /// <summary>State JSON with its seal appended as the last field.</summary>
    public static string Seal(string json)
    {
        string body = json.TrimEnd();
        if (!body.EndsWith('}')) throw new ArgumentException("Not a JSON object.", nameof(json));
        string open = body[..^1].TrimEnd() + $",\n  \"{StateHashField}\": \"";
        string unsealed = open + Zeros + "\"\n}";
        return open + Hash(Encoding.UTF8.GetBytes(unsealed)) + "\"\n}";
    }

    /// <summary>
    /// Checks the seal of state text read from <paramref name="path"/>: true when sealed and intact,
    /// false when it has no seal (written before states were sealed); throws
    /// <see cref="DataFormatException"/> ("damaged: content hash mismatch") when the text changed.
    /// </summary>
    public static bool CheckSeal(string text, string path)
    {
        var matches = SealPattern.Matches(text);
        if (matches.Count == 0)
        {
            // No well-formed seal: only a state from before seals may lack one. A seal key with a
            // malformed value, or a state with file digests (written since), means the seal was damaged.
            if (text.Contains($"\"{StateHashField}\"", StringComparison.Ordinal) || text.Contains("\"files\":", StringComparison.Ordinal))
                throw new DataFormatException($"'{path}' is damaged: content hash mismatch (its {StateHashField} seal is missing or malformed).");
            return false;
        }
        var m = matches[^1];
        string unsealed = text[..m.Groups[1].Index] + Zeros + text[(m.Groups[1].Index + 32)..];
        if (Hash(Encoding.UTF8.GetBytes(unsealed)) != m.Groups[1].Value)
            throw new DataFormatException($"'{path}' is damaged: content hash mismatch (its {StateHashField} does not match its text).");
        return true;
    }

    /// <summary>Reads and unseals a state file: the seal checked (when present), then parsed; errors name the file.</summary>
    public static TrainingState ReadState(string path)
    {
        string text;
        try { text = File.ReadAllText(path, Encoding.UTF8); }
        catch (DecoderFallbackException) { throw new DataFormatException($"'{path}' is damaged: not UTF-8 text."); }
        if (text.Length == 0) throw new DataFormatException($"'{path}' is damaged: it is empty.");
        CheckSeal(text, path);
        return TrainingState.FromJson(text, path);
    }

    /// <summary>
    /// What is wrong with the checkpoint folder <paramref name="folder"/> for <paramref name="state"/>:
    /// each listed file missing, of another size, or with another hash, and the files any resume
    /// needs (weights, momentum) missing; empty when it is intact. Each problem names the file.
    /// </summary>
    public static List<string> Problems(string folder, TrainingState state)
    {
        var problems = new List<string>();
        foreach (var required in new[] { Checkpoint.ModelFile, Checkpoint.OptimizerFile })
            if (state.Files?.ContainsKey(required) != true && !File.Exists(Path.Combine(folder, required)))
                problems.Add($"{required}: missing");
        foreach (var (name, expected) in state.Files ?? new Dictionary<string, FileDigest>())
        {
            string path = Path.Combine(folder, name);
            if (!File.Exists(path)) { problems.Add($"{name}: missing"); continue; }
            long length = new FileInfo(path).Length;
            if (length != expected.Bytes) { problems.Add($"{name}: {length:N0} bytes, {expected.Bytes:N0} were written (truncated or overwritten)"); continue; }
            if (Digest(path).Xxh128 != expected.Xxh128) problems.Add($"{name}: content hash mismatch");
        }
        return problems;
    }
}
