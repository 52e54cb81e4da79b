namespace CudaSwa.Cli;

/// <summary>The exit codes of `cudaswa`, one per kind of outcome (README lists them).</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>An internal error: a bug in cudaswa, reported with a request to report it.</summary>
    public const int InternalError = 1;

    /// <summary>Bad options or bad input files (the message names which and what was expected), or a dataset download that could not complete or did not verify.</summary>
    public const int BadInput = 2;

    /// <summary>Training diverged (NaN/Inf loss or weights); the last good checkpoint is kept.</summary>
    public const int Diverged = 3;

    /// <summary>Out of memory (host or GPU) or disk space; what was saved is intact and the message says how to go on.</summary>
    public const int OutOfResources = 4;

    /// <summary>Interrupted (Ctrl-C or SIGTERM); a checkpoint was saved.</summary>
    public const int Interrupted = 130;

    /// <summary>The exit code of a training run that ended with <paramref name="outcome"/>.</summary>
    public static int Of(Training.RunOutcome outcome) => outcome switch
    {
        Training.RunOutcome.Completed => Ok,
        Training.RunOutcome.Interrupted => Interrupted,
        _ => Diverged,
    };
}
