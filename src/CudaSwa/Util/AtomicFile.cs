namespace CudaSwa.Util;

/// <summary>
/// Writes a file under a temporary name in the same folder, flushes it to disk, then renames it
/// over the target: readers see the old file or the new one, never half of one.
/// </summary>
public static class AtomicFile
{
    /// <summary>The ending of the temporary files (a crash can leave one behind; a resume removes them).</summary>
    public const string TempSuffix = ".tmp";

    /// <summary>Writes <paramref name="path"/> atomically: <paramref name="writer"/> fills a temporary file, which is flushed and renamed over the target.</summary>
    public static void Write(string path, Action<Stream> writer)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            FileEvents.Hit("create temp", full);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                writer(stream);
                stream.Flush(flushToDisk: true);
            }
            FileEvents.Hit("written", full);
            File.Move(temp, full, overwrite: true);
            FileEvents.Hit("renamed into place", full);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8, atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, s => { var bytes = System.Text.Encoding.UTF8.GetBytes(text); s.Write(bytes); });

    /// <summary>Writes <paramref name="bytes"/>, atomically.</summary>
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
}
