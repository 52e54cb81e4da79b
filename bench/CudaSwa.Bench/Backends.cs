using CudaSwa.Devices;
using CudaSwa.Cpu;
using CudaSwa.Tensors;

namespace CudaSwa.Bench;

/// <summary>The devices a benchmark runs on: the CPU always, CUDA when a GPU is usable here.</summary>
public static class Backends
{
    private static Backend? s_cuda;
    private static bool s_probed;

    public static IEnumerable<string> Available()
    {
        yield return "cpu";
        if (Cuda() is not null) yield return "cuda";
    }

    public static Backend Create(string name) => name == "cpu" ? new CpuBackend() : Cuda() ?? throw new InvalidOperationException("CUDA is unavailable here.");

    private static Backend? Cuda()
    {
        if (!s_probed)
        {
            s_probed = true;
            if (BackendFactory.TryCreateCuda(0, out var b, out _)) s_cuda = b;
        }
        return s_cuda;
    }

    /// <summary>Disposes CPU backends; the CUDA backend lives for the process.</summary>
    public static void Release(Backend b)
    {
        if (b is not CudaSwa.Cuda.CudaBackend) b.Dispose();
    }
}
