using System.Runtime.InteropServices;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>
/// The CPU backend: the readable reference every CUDA op is tested against, and the fallback
/// when no GPU is present. Multi-threaded over the cores (CpuParallel), SIMD through
/// TensorPrimitives, Vector256/Vector512 and the blocked GEMM.
/// </summary>
public sealed unsafe partial class CpuBackend : Backend
{
    private readonly CpuConvolution _convolution = new();

    /// <summary>The convolutions: their algorithms and the choice among them.</summary>
    internal CpuConvolution Convolution => _convolution;

    /// <summary>A CPU backend; an unknown CUDASWA_CPU_CONV is refused here, naming the variable, before any work.</summary>
    public CpuBackend() => _ = ConvolutionChoice.Mode;

    /// <inheritdoc/>
    public override string Name => "cpu";

    /// <inheritdoc/>
    public override string Description =>
        $"CPU: {CpuParallel.Workers} threads, {RuntimeInformation.ProcessArchitecture}, GEMM kernel {Gemm.KernelName}";

    /// <inheritdoc/>
    public override void Dispose() { }
}
