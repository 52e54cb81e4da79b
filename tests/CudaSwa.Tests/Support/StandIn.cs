using System.Runtime.InteropServices;
using CudaSwa.Cuda;
using CudaSwa.Native;
using CudaSwa.Tests.Emulation;
using NUnit.Framework;

namespace CudaSwa.Tests.Support;

/// <summary>
/// The CUDA backend over the stand-in CUDA stack, all in the emulation library: the stand-in
/// driver (Emulation/stand_in_driver.cpp), loaded by its full path through the engine's own
/// CuDriver.FromFile — the production loader never looks for it —, with its kernels compiled by
/// the real NVRTC and run emulated on the CPU, and the stand-in cuDNN and cuBLAS
/// (stand_in_cudnn.cpp, stand_in_cublas.cpp: float64 loops written from NVIDIA's documentation)
/// loaded for this backend only, by path (ToolkitSelection.ForFiles), so a real GPU's libraries
/// in the same process are untouched. Needs clang++-14 (to build it) and NVRTC
/// (tests/tools/fetch-nvrtc.sh); without either the test is ignored with the reason.
/// </summary>
public static unsafe class StandIn
{
    private static CuDriver? s_driver;

    internal static CuDriver Driver()
    {
        var library = EmulationLibrary.Require(Rounding.Separate);
        if (Toolchain.Nvrtc(out string reason) is null)
            Toolchain.MissingTool("NVRTC", $"The stand-in driver runs the kernels the CUDA backend compiles with NVRTC, and there is none: {reason}");
        return s_driver ??= CuDriver.FromFile(library.Path);
    }

    /// <summary>The CUDA backend on the stand-in's one device, with the stand-in cuDNN and cuBLAS; dispose it to release the context.</summary>
    public static CudaBackend CreateBackend(bool allowTf32 = false, string? cacheFolder = null)
    {
        var driver = Driver();
        var (cublas, cudnn) = VendorFiles();
        return CudaBackend.Create(0, allowTf32, driver, cublas, cudnn, cacheFolder);
    }

    /// <summary>A kernels-only CUDA backend on the stand-in (no cuDNN, no cuBLAS): how the engine runs when it is created without them.</summary>
    public static CudaBackend CreateKernelsOnlyBackend() => CudaBackend.Create(0, allowTf32: false, Driver(), vendorLibraries: false);

    /// <summary>The stand-in cuBLAS and cuDNN under the names the engine's library search knows.</summary>
    public static (string Cublas, string Cudnn) VendorFiles()
    {
        var library = EmulationLibrary.Require(Rounding.Separate);
        return (Path.Combine(library.VendorFolder, "libcublas.so.11"), Path.Combine(library.VendorFolder, "libcudnn.so.9"));
    }

    /// <summary>
    /// The environment that points a `cudaswa` process at the whole stand-in stack through the
    /// engine's library overrides (CUDASWA_LIBCUDA, CUDASWA_NVRTC, CUDASWA_CUBLAS, CUDASWA_CUDNN).
    /// </summary>
    public static Dictionary<string, string> Environment()
    {
        Driver();
        var library = EmulationLibrary.Require(Rounding.Separate);
        var (cublas, cudnn) = VendorFiles();
        return new()
        {
            ["CUDASWA_LIBCUDA"] = library.Path,
            ["CUDASWA_NVRTC"] = Toolchain.Nvrtc(out _)!,
            ["CUDASWA_CUBLAS"] = cublas,
            ["CUDASWA_CUDNN"] = cudnn,
        };
    }

    /// <summary>cuCtxSynchronize calls the stand-in driver has seen.</summary>
    public static ulong Synchronizations() =>
        ((delegate* unmanaged<ulong>)NativeLibrary.GetExport(Driver().Library, "cudaswaStandInSynchronizations"))();

    /// <summary>The next cuCtxSynchronize fails with <paramref name="message"/>, as after an asynchronous fault of earlier work.</summary>
    public static void FailNextSynchronize(string message)
    {
        var f = (delegate* unmanaged<byte*, void>)NativeLibrary.GetExport(Driver().Library, "cudaswaStandInFailNextSynchronize");
        fixed (byte* m = System.Text.Encoding.UTF8.GetBytes(message + "\0")) f(m);
    }

    /// <summary>The stand-in's live allocations, their bytes, and allocations made since it was loaded.</summary>
    public static (ulong Live, ulong Bytes, ulong Made) Memory()
    {
        var f = (delegate* unmanaged<ulong*, ulong*, ulong*, void>)NativeLibrary.GetExport(Driver().Library, "cudaswaStandInMemory");
        ulong live, bytes, made;
        f(&live, &bytes, &made);
        return (live, bytes, made);
    }
}
