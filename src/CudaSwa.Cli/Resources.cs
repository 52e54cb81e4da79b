using CudaSwa.Training;

namespace CudaSwa.Cli;

/// <summary>The machine ran out of memory or disk space (exit code 4); the message says what to change and that nothing saved was lost.</summary>
public sealed class OutOfResourcesException(string message) : Exception(message);

/// <summary>Turns memory and disk exhaustion into messages that name the option or folder and the remedy.</summary>
public static class Resources
{
    /// <summary>ENOSPC (28) and EDQUOT (122) as .NET reports them on Linux, or Windows' disk-full codes.</summary>
    public static bool IsDiskFull(IOException e) =>
        e.HResult is 28 or 122 or unchecked((int)0x80070070) or unchecked((int)0x80070027) ||
        e.Message.Contains("No space left on device", StringComparison.Ordinal) || e.Message.Contains("Disk quota exceeded", StringComparison.Ordinal);

    /// <summary>Runs <paramref name="work"/>; an OutOfMemoryException becomes an <see cref="OutOfResourcesException"/> naming what was being done and the option to lower.</summary>
    public static T OutOfMemoryAs<T>(Func<T> work, string doing, string option, int value)
    {
        try
        {
            return work();
        }
        catch (OutOfMemoryException e)
        {
            throw new OutOfResourcesException($"Out of memory {doing}: {e.Message} Try a smaller {option} (now {value}) or a smaller --model.");
        }
    }

    /// <summary>What a crash or a full disk leaves for the user: the last committed checkpoint and the command that continues from it.</summary>
    public static string LastGoodCheckpoint(string outDir)
    {
        if (!File.Exists(Path.Combine(outDir, Checkpoint.StateFile)))
            return "No checkpoint had been written yet: free some space and start the run again.";
        try
        {
            var state = Checkpoint.ReadState(outDir);
            return $"The last good checkpoint (after epoch {state.NextEpoch}{(state.NextBatch > 0 ? $", batch {state.NextBatch}" : "")}) is intact: " +
                   $"free some space, then continue with: cudaswa train --resume {outDir}";
        }
        catch (Exception e) when (e is IOException or Data.DataFormatException or InvalidDataException)
        {
            return $"Its checkpoint could not be read back ({e.Message}).";
        }
    }
}
