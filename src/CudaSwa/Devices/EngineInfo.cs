using System.Runtime.Intrinsics;
using CudaSwa.Cpu;
using CudaSwa.Cpu.Workers;

namespace CudaSwa.Devices;

/// <summary>What the engine finds on this machine: the CPU's SIMD support and worker threads, and CUDA (driver, devices, libraries) or why it is unavailable.</summary>
public static class EngineInfo
{
    /// <summary>
    /// What is known of the CUDA backend on real hardware, said whenever it is chosen. It must change
    /// when docs/gpu-results.md records a GPU run (a test holds the two together).
    /// </summary>
    public static string CudaVerification { get; } =
        "note: the CUDA backend has not yet been verified on an NVIDIA GPU: its kernels and cuDNN/cuBLAS calls are checked on the CPU " +
        "(emulated kernels, stand-in libraries) only; see docs/gpu-results.md.";

    /// <summary>One line about the CPU, then the CUDA lines (for `cudaswa info` and logs).</summary>
    public static IEnumerable<string> Describe()
    {
        yield return $"CPU: {Environment.ProcessorCount} logical cores; worker threads {CpuParallel.Workers}; " +
                     $"Vector512 {(Vector512.IsHardwareAccelerated ? "yes" : "no")}, Vector256 {(Vector256.IsHardwareAccelerated ? "yes" : "no")}, " +
                     $"AVX-512F {(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "yes" : "no")}, FMA {(System.Runtime.Intrinsics.X86.Fma.IsSupported ? "yes" : "no")}; " +
                     $"GEMM kernel {Gemm.KernelName}";
        foreach (var line in CudaInfo.Describe()) yield return line;
    }
}
