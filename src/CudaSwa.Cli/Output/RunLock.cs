namespace CudaSwa.Cli.Output;

/// <summary>
/// An exclusive lock on a run folder (.lock, opened without sharing and deleted on close), so two
/// processes never write one run. The lock dies with its process, so a crash never leaves it held.
/// </summary>
public sealed class RunLock : IDisposable
{
    private readonly FileStream _stream;

    private RunLock(FileStream stream) => _stream = stream;

    public static RunLock Acquire(string outDir)
    {
        string path = Path.Combine(outDir, ".lock");
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            return new RunLock(stream);
        }
        catch (IOException e) when (e.HResult == 11) // EWOULDBLOCK: another process holds the lock
        {
            throw new OptionException($"Another cudaswa process is using {outDir} (it holds {path}); wait for it or choose another --out.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OptionException($"The run folder {outDir} cannot be written ({e.Message}); a run needs a folder it can write its checkpoints to.");
        }
    }

    /// <summary>Whether another process holds the lock of <paramref name="outDir"/> now (a run in progress there).</summary>
    public static bool IsHeld(string outDir)
    {
        string path = Path.Combine(outDir, ".lock");
        if (!File.Exists(path)) return false;
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1);
            return false;
        }
        catch (IOException e) when (e.HResult == 11) // EWOULDBLOCK: another process holds it
        {
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public void Dispose() => _stream.Dispose();
}
