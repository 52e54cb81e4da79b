using CudaSwa.Cli;

namespace CudaSwa.Tests.Cli;

/// <summary>Runs `cudaswa` in-process with captured output.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public string All => Output + Error;
    }

    public static Result Run(params string[] args) => RunWith(_ => null, args);

    /// <summary><see cref="Run"/> with the environment variables <paramref name="variables"/> gives (a scheduler's, say).</summary>
    public static Result RunWith(Func<string, string?> variables, params string[] args) => RunAt(1000, variables, args);

    /// <summary><see cref="RunWith"/> on a console <paramref name="width"/> columns wide (a terminal's 80, say).</summary>
    public static Result RunAt(int width, Func<string, string?> variables, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, CliEnvironment.ForWriter(output, error, variables: variables, width: width));
        return new Result(code, output.ToString(), error.ToString());
    }

    public static string TempDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"{name}-{Guid.NewGuid():N}");
        return dir;
    }
}
