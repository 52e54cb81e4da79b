using Spectre.Console;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Workers;
using CudaSwa.Devices;
using CudaSwa.Cpu;

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
            c.WriteLine($"CPU: {Environment.ProcessorCount} logical cores; worker threads {CpuParallel.Workers}; " +
                        $"Vector512 {(Vector512.IsHardwareAccelerated ? "yes" : "no")}, Vector256 {(Vector256.IsHardwareAccelerated ? "yes" : "no")}, " +
                        $"AVX-512F {(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "yes" : "no")}, FMA {(System.Runtime.Intrinsics.X86.Fma.IsSupported ? "yes" : "no")}; " +
                        $"GEMM kernel {Gemm.KernelName}");
            foreach (var line in CudaInfo.Describe()) c.WriteLine(line);
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
