namespace CudaSwa.Cli.Output;

/// <summary>
/// An exclusive lock on a run folder for the life of the run, so two processes never write (and
/// prune) the same checkpoints. The OS releases it if the process dies.
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
        catch (IOException)
        {
            throw new Training.OptionException($"Another cudaswa process is using {outDir} (it holds {path}); wait for it or choose another --out.");
        }
    }

    public void Dispose() => _stream.Dispose();
}
