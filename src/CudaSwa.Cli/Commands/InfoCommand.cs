using Spectre.Console;
using System.CommandLine;
using System.Runtime.InteropServices;
using CudaSwa.Devices;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa info`: the runtime, the CPU's SIMD support, and CUDA (driver, devices, libraries) or why it is unavailable.</summary>
public static class InfoCommand
{
    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("info", "Show .NET, CPU SIMD support and CUDA devices/libraries (or why CUDA is unavailable).");
        cmd.SetAction(_ =>
        {
            var c = env.Console;
            c.WriteLine($"cudaswa {typeof(InfoCommand).Assembly.GetName().Version} on {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}");
            foreach (var line in EngineInfo.Describe()) c.WriteLine(line);
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
