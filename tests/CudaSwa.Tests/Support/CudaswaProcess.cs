using System.Diagnostics;

namespace CudaSwa.Tests.Support;

/// <summary>
/// `cudaswa` in a child process (the cudaswa.dll next to the tests, on the bare runtime), with
/// extra environment variables: for a real kill (SIGKILL at a file event), for another process's
/// cache, or for the stand-in CUDA stack, whose library overrides must never reach this process.
/// </summary>
public static class CudaswaProcess
{
    public sealed record Result(int ExitCode, string Output);

    public static Result Run(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null, int timeoutMs = 600_000)
    {
        var psi = new ProcessStartInfo(Toolchain.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cudaswa.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            return new Result(-1, $"did not finish in {timeoutMs / 1000} s\n{stdout.Result}{stderr.Result}");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result + stderr.Result);
    }
}
