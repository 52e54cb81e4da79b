
namespace CudaSwa.Cli.Output;

/// <summary>Creates a run folder, with an option error (exit 2) that names it and the reason when it cannot be.</summary>
public static class RunFolder
{
    public static void Create(string outDir, string option)
    {
        try
        {
            Directory.CreateDirectory(outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OptionException($"{option} {outDir}: the folder cannot be created or written ({e.Message}); choose a folder you can write to.");
        }
    }
}
