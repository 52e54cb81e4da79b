namespace CudaSwa.Cli;

/// <summary>Process exit codes of `cudaswa`.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Runtime failure (e.g. a CUDA error mid-run).</summary>
    public const int Failure = 1;
    /// <summary>Bad options or bad input files: nothing was written to --out.</summary>
    public const int BadInput = 2;
    /// <summary>Training diverged (NaN/Inf loss); the last good checkpoint is kept.</summary>
    public const int Diverged = 3;
    /// <summary>Interrupted (Ctrl-C); a checkpoint was saved.</summary>
    public const int Interrupted = 130;
}
