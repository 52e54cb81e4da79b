using System.Diagnostics;
using System.Runtime.InteropServices;
using NUnit.Framework;

namespace CudaSwa.Tests.Distributed;

/// <summary>
/// Starts .NET programs as the ranks of an MPI job on this machine (MPICH's mpiexec) for the
/// Distributed tests, with a time limit so a hang fails the test instead of stopping the run.
/// Without mpiexec or an MPICH-ABI library the tests are ignored with the reason.
/// </summary>
public static class MpiJob
{
    public sealed record Result(int ExitCode, string Output, string Error, bool TimedOut)
    {
        public string All => Output + Error;
    }

    /// <summary>Ignores the calling test, saying why, when MPI cannot run here.</summary>
    public static void Require()
    {
        if (Mpiexec() is null)
            Support.Toolchain.MissingTool("MPICH", "No MPI: mpiexec was not found on PATH (Debian: apt-get install mpich; .ci/run installs it).");
        if (!CudaSwa.Distributed.MpiCollective.Libraries.Any(l => NativeLibrary.TryLoad(l, out _)))
            Support.Toolchain.MissingTool("MPICH", $"No MPI: no MPICH-ABI library ({string.Join(", ", CudaSwa.Distributed.MpiCollective.Libraries)}) (Debian: apt-get install mpich).");
    }

    /// <summary>The .NET host that runs the test's programs.</summary>
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } p ? p : "dotnet";

    /// <summary>A program built next to the tests (cudaswa.dll, CudaSwa.DistributedHost.dll).</summary>
    public static string Program(string dll) => Path.Combine(AppContext.BaseDirectory, dll);

    /// <summary>Runs `mpiexec -n ranks dotnet dll args` (ranks 0: the program alone, no launcher).</summary>
    public static Result Run(int ranks, string dll, IEnumerable<string> args, TimeSpan limit, IReadOnlyDictionary<string, string>? env = null) =>
        Wait(Start(ranks, dll, args, env), limit);

    public static Process Start(int ranks, string dll, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(ranks > 0 ? Mpiexec()! : Dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (ranks > 0)
        {
            psi.ArgumentList.Add("-n");
            psi.ArgumentList.Add(ranks.ToString(System.Globalization.CultureInfo.InvariantCulture));
            psi.ArgumentList.Add(Dotnet);
        }
        psi.ArgumentList.Add(Program(dll));
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A test run inside a Slurm array task must not make the child runs pick one experiment member.
        psi.Environment.Remove("SLURM_ARRAY_TASK_ID");
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    public static Result Wait(Process p, TimeSpan limit)
    {
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        bool done = p.WaitForExit(limit);
        if (!done)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit();
        }
        return new Result(done ? p.ExitCode : -1, output.Result, error.Result, !done);
    }

    private static string? Mpiexec()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string path = Path.Combine(dir, "mpiexec");
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>The processes of rank <paramref name="rank"/> whose command line contains <paramref name="marker"/> (Linux /proc).</summary>
    public static IReadOnlyList<int> RankProcesses(int rank, string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                string cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (!cmd.Contains(marker, StringComparison.Ordinal) || cmd.Contains("mpiexec", StringComparison.Ordinal)) continue;
                string env = File.ReadAllText(Path.Combine(dir, "environ"));
                if (env.Split('\0').Contains($"PMI_RANK={rank}")) found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }
}
