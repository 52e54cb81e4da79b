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

    public void Dispose() => _stream.Dispose();
}
