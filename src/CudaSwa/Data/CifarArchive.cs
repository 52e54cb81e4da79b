using System.Formats.Tar;
using System.IO.Compression;

namespace CudaSwa.Data;

/// <summary>
/// Reads members of a CIFAR .tar.gz into memory without extracting anything. Archives are untrusted:
/// an entry with an absolute path, a <c>..</c> component, or a link refuses the whole archive, and a
/// damaged gzip or tar stream is reported naming the archive.
/// </summary>
public static class CifarArchive
{
    /// <summary>Whether <paramref name="path"/> names a gzip-compressed tar file by its extension.</summary>
    public static bool IsArchivePath(string path) =>
        path.EndsWith(".tar.gz", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tgz", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The regular files of the archive whose names (without a leading <c>./</c>) are in
    /// <paramref name="wanted"/>, by name; the others are read past.
    /// </summary>
    public static Dictionary<string, byte[]> ReadMembers(string path, IReadOnlySet<string> wanted)
    {
        var found = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        try
        {
            using var file = File.OpenRead(path);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                string name = Normalize(entry.Name);
                if (entry.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink)
                    throw new DataFormatException($"Archive '{path}' is refused: entry '{entry.Name}' is a link (a CIFAR archive holds plain files only).");
                if (Path.IsPathRooted(entry.Name) || name.Split('/').Contains(".."))
                    throw new DataFormatException($"Archive '{path}' is refused: entry '{entry.Name}' would be written outside the folder it is unpacked into.");
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || !wanted.Contains(name) || entry.DataStream is null)
                    continue;
                if (entry.Length > int.MaxValue)
                    throw new DataFormatException($"Archive '{path}': entry '{entry.Name}' is {entry.Length} bytes, far more than a CIFAR file.");
                var bytes = new byte[entry.Length];
                entry.DataStream.ReadExactly(bytes);
                found[name] = bytes;
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            throw new DataFormatException($"Archive '{path}' is damaged or not a .tar.gz ({e.Message}).");
        }
        return found;
    }

    private static string Normalize(string name)
    {
        name = name.Replace('\\', '/');
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        return name;
    }
}
