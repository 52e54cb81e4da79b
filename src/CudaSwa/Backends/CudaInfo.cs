using CudaSwa.Cuda;
using CudaSwa.Native;

namespace CudaSwa.Backends;

/// <summary>Lines for `cudaswa info` about CUDA: driver, devices, libraries and versions, or the one reason it is unavailable.</summary>
public static class CudaInfo
{
    public static IEnumerable<string> Describe()
    {
        var lines = new List<string>();
        int count;
        try
        {
            count = CudaDevice.Count();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CudaException)
        {
            lines.Add($"CUDA unavailable: {OneLine(e.Message)}");
            return lines;
        }
        lines.Add($"CUDA driver: {NativeLibraries.LoadedFrom(NativeLibraries.Cuda)}; {count} device(s)");
        if (count == 0)
        {
            lines.Add("CUDA unavailable: the driver reports no CUDA device");
            return lines;
        }
        if (!BackendFactory.TryCreateCuda(0, out var backend, out string reason))
        {
            lines.Add($"CUDA unavailable: {OneLine(reason)}");
            return lines;
        }
        using (backend)
        {
            var cuda = (CudaBackend)backend!;
            lines.Add($"device: {cuda.Device}");
            for (int i = 1; i < count; i++) lines.Add($"device: cuda:{i} (use --device cuda:{i})");
            lines.Add($"cuDNN {cuda.CudnnVersion}: {NativeLibraries.LoadedFrom(NativeLibraries.Cudnn)}");
            lines.Add($"cuBLAS {cuda.CublasVersion}: {NativeLibraries.LoadedFrom(NativeLibraries.Cublas)}");
            lines.Add($"NVRTC {cuda.Kernels.NvrtcVersion}: {NativeLibraries.LoadedFrom(NativeLibraries.Nvrtc)} (kernel cache {cuda.Kernels.CacheFolder})");
        }
        return lines;
    }

    private static string OneLine(string s) => s.Replace('\n', ' ').Replace('\r', ' ');
}
