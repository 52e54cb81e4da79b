using Spectre.Console;
using System.CommandLine;
using CudaSwa.Cli.Commands;
using CudaSwa.Data;

namespace CudaSwa.Cli;

/// <summary>
/// The `cudaswa` command tree and its exit codes (<see cref="ExitCodes"/>). Parse errors, bad
/// option values and bad input files end with exit code 2 and a message that names the option or
/// file and what was expected, before anything is written to --out; exhausted memory or disk with
/// 4 and what to change; anything else is a bug: exit 1 with a request to report it.
/// </summary>
public static class CliApp
{
    public static int Run(string[] args, CliEnvironment env)
    {
        var root = new RootCommand("CudaSwa: Stochastic Weight Averaging for CIFAR ResNets, CUDA-native, with a CPU fallback.\n" +
                                   "Start with `cudaswa train` (synthetic data, about two minutes on a CPU).");
        root.Subcommands.Add(TrainCommand.Create(env));
        root.Subcommands.Add(EvalCommand.Create(env));
        root.Subcommands.Add(AverageCommand.Create(env));
        root.Subcommands.Add(LandscapeCommand.Create(env));
        root.Subcommands.Add(ExperimentCommand.Create(env));
        root.Subcommands.Add(InfoCommand.Create(env));
        root.Subcommands.Add(SynthCommand.Create(env));
        root.Subcommands.Add(BenchCommand.Create(env));
        root.Subcommands.Add(DataCommand.Create(env));
        root.Subcommands.Add(VerifyCommand.Create(env));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var line in Options.ParseErrorText.Describe(parse, args)) env.Error.WriteLine($"error: {line}");
            env.Error.WriteLine("Run `cudaswa --help` (or `cudaswa <command> --help`) for the options.");
            return ExitCodes.BadInput;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = new ConsoleTextWriter(env), Error = env.Error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is OptionException or DataFormatException or InvalidDataException or Devices.DeviceUnavailableException or FileNotFoundException
                                       or Download.DownloadFailedException)
        {
            env.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (Download.DownloadInterruptedException e)
        {
            env.Error.WriteLine(e.Message);
            return ExitCodes.Interrupted;
        }
        catch (Training.InsufficientSpaceException e)
        {
            env.Error.WriteLine($"error: not enough disk space: {e.Message}");
            return ExitCodes.OutOfResources;
        }
        catch (OutOfResourcesException e)
        {
            env.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.OutOfResources;
        }
        catch (OutOfMemoryException e)
        {
            env.Error.WriteLine($"error: out of memory: {e.Message} Try a smaller --batch or --model.");
            return ExitCodes.OutOfResources;
        }
        catch (IOException e) when (Resources.IsDiskFull(e))
        {
            env.Error.WriteLine($"error: the disk is full: {e.Message}");
            return ExitCodes.OutOfResources;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("CUDASWA_DEBUG") != "1")
        {
            env.Error.WriteLine($"internal error ({e.GetType().Name}): {e.Message}");
            env.Error.WriteLine("This is a bug in cudaswa: please report it with the command line and the output of a run with CUDASWA_DEBUG=1 (which adds the stack trace).");
            return ExitCodes.InternalError;
        }
    }

    /// <summary>Routes System.CommandLine's own output (help text) through the Spectre console.</summary>
    private sealed class ConsoleTextWriter(CliEnvironment env) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void Write(char value) => env.Console.Write(value.ToString());
        public override void Write(string? value) => env.Console.Write(value ?? "");
        public override void WriteLine(string? value) => env.Console.WriteLine(value ?? "");
    }
}
