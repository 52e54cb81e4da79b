using Spectre.Console;

namespace CudaSwa.Cli;

/// <summary>
/// Where the program writes and how it learns about Ctrl-C. The process uses the real console;
/// tests pass writers and their own cancellation source to run commands in-process.
/// </summary>
public sealed class CliEnvironment
{
    private static System.Runtime.InteropServices.PosixSignalRegistration? s_sigterm;

    public required IAnsiConsole Console { get; init; }
    public required TextWriter Error { get; init; }
    public required bool Interactive { get; init; }
    public CancellationTokenSource Cancel { get; init; } = new();
    /// <summary>The process's environment variables (a scheduler's job-array index, ...); tests pass their own.</summary>
    public Func<string, string?> Variables { get; init; } = Environment.GetEnvironmentVariable;

    public static CliEnvironment FromProcess()
    {
        var cancel = new CancellationTokenSource();
        System.Console.CancelKeyPress += (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // a second Ctrl-C ends the process at once
            e.Cancel = true;
            cancel.Cancel();
            System.Console.Error.WriteLine();
            System.Console.Error.WriteLine("Ctrl-C: stopping after the current step and saving a checkpoint (press again to quit at once)...");
        };
        // SIGTERM (schedulers, `timeout`, docker stop) is handled like Ctrl-C: save, then exit.
        s_sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
        {
            if (cancel.IsCancellationRequested) return;
            ctx.Cancel = true;
            cancel.Cancel();
            System.Console.Error.WriteLine("SIGTERM: stopping after the current step and saving a checkpoint...");
        });
        bool interactive = !System.Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (System.Console.IsOutputRedirected) AnsiConsole.Profile.Width = 1000; // logs and pipes: one line per line, no wrapping
        return new CliEnvironment { Console = AnsiConsole.Console, Error = System.Console.Error, Interactive = interactive, Cancel = cancel };
    }

    /// <summary>A plain, non-interactive console writing into <paramref name="output"/> (tests, redirected runs), <paramref name="width"/> columns wide.</summary>
    public static CliEnvironment ForWriter(TextWriter output, TextWriter error, CancellationTokenSource? cancel = null, Func<string, string?>? variables = null, int width = 1000)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = width;
        return new CliEnvironment { Console = console, Error = error, Interactive = false, Cancel = cancel ?? new CancellationTokenSource(), Variables = variables ?? Environment.GetEnvironmentVariable };
    }
}
