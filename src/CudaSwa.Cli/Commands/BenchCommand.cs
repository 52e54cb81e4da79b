using System.CommandLine;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa bench`: end-to-end throughput for users without BenchmarkDotNet (filled in by the benchmarks work).</summary>
public static class BenchCommand
{
    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("bench", "Measure train/eval/BN-recompute throughput and the SWA update.");
        cmd.SetAction(_ => ExitCodes.Ok);
        return cmd;
    }
}
