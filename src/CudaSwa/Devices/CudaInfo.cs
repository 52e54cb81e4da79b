using CudaSwa.Cuda;
using CudaSwa.Native;

namespace CudaSwa.Devices;

/// <summary>
/// Lines for `cudaswa info` about CUDA: the driver, the devices, and for NVRTC, cuBLAS and cuDNN
/// which file is used (path, version, CUDA major), every other file found, and mismatches — or,
/// when CUDA is unavailable, one line saying why followed by what was looked for and where.
/// </summary>
internal static class CudaInfo
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
            lines.AddRange(Survey());
            return lines;
        }
        var driver = CuDriver.System;
        int version = DriverVersion(driver);
        if (driver.IsStandIn)
            lines.Add("STAND-IN, NO GPU: the CUDA driver here is CudaSwa's test stand-in (host memory, kernels emulated on the CPU); " +
                      "nothing below was found on or run by a GPU");
        lines.Add($"CUDA driver: {driver.Path}; supports CUDA {CudaDevice.FormatVersion(version)}; {count} device(s)");
        if (count == 0)
        {
            lines.Add("CUDA unavailable: the driver reports no CUDA device");
            lines.AddRange(Survey());
            return lines;
        }
        if (!BackendFactory.TryCreateCuda(0, out var backend, out string reason))
        {
            lines.Add($"CUDA unavailable: {OneLine(reason)}");
            lines.AddRange(ToolkitSelection.Current?.Describe() ?? Survey());
            return lines;
        }
        using (backend)
        {
            var cuda = (CudaBackend)backend!;
            lines.Add($"device: {cuda.Device}");
            for (int i = 1; i < count; i++) lines.Add($"device: cuda:{i}");
            lines.AddRange(cuda.Libraries.Report);
            lines.Add($"kernels: {(cuda.KernelLibrary.Cubin ? "CUBIN" : "PTX")} for sm_{cuda.KernelLibrary.Architecture} from NVRTC {cuda.NvrtcVersion}; cache {cuda.KernelCacheFolder}");
            lines.Add($"cuDNN algorithms: deterministic only; chosen per shape and cached in {cuda.ConvolutionChoicesFile}");
        }
        return lines;
    }

    private static unsafe int DriverVersion(CuDriver driver)
    {
        int v;
        return driver.cuDriverGetVersion(&v) == CuResult.Success ? v : 0;
    }

    /// <summary>The NVRTC, cuBLAS and cuDNN files found (nothing chosen), for when no selection could be made.</summary>
    private static IEnumerable<string> Survey()
    {
        yield return $"CUDA libraries looked for in: {NativeLibraries.Describe(NativeLibraries.SearchFolders(includePython: true))}";
        var found = ToolkitSelection.Survey();
        foreach (var logical in new[] { NativeLibraries.Nvrtc, NativeLibraries.Cublas, NativeLibraries.Cudnn })
        {
            var files = found.Where(c => c.Logical == logical).ToList();
            string name = ToolkitSelection.DisplayName(logical);
            if (files.Count == 0) yield return $"  {name,-7} none found";
            foreach (var c in files)
                yield return $"  {name,-7} {c.Path} ({(c.CudaMajor is int m ? $"CUDA {m}" : "CUDA version unknown")}{(c.Version.Length > 0 ? ", " + c.Version : "")}{(c.Note.Length > 0 ? ", " + c.Note : "")})";
        }
    }

    private static string OneLine(string s) => s.Replace('\n', ' ').Replace('\r', ' ');
}
