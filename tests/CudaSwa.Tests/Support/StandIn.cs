using System.Runtime.InteropServices;
using CudaSwa.Cuda;
using CudaSwa.Native;
using CudaSwa.Tests.Emulation;
using NUnit.Framework;

namespace CudaSwa.Tests.Support;

/// <summary>
/// The CUDA backend over the stand-in driver (Emulation/stand_in_driver.cpp, in the emulation
/// library): loaded by its full path through the engine's own CuDriver.FromFile — the production
/// loader never looks for it — with its kernels compiled by the real NVRTC and run emulated on
/// the CPU. Needs clang++-14 (to build it) and NVRTC (tests/tools/fetch-nvrtc.sh); without either
/// the test is ignored with the reason.
/// </summary>
public static unsafe class StandIn
{
    private static CuDriver? s_driver;

    internal static CuDriver Driver()
    {
        var library = EmulationLibrary.Require(Rounding.Separate);
        if (Toolchain.Nvrtc(out string reason) is null)
            Assert.Ignore($"The stand-in driver runs the kernels the CUDA backend compiles with NVRTC, and there is none: {reason}");
        return s_driver ??= CuDriver.FromFile(library.Path);
    }

    /// <summary>A kernels-only CUDA backend on the stand-in's one device; dispose it to release the context.</summary>
    public static CudaBackend CreateBackend() => CudaBackend.Create(0, allowTf32: false, Driver(), vendorLibraries: false);

    /// <summary>The stand-in's live allocations, their bytes, and allocations made since it was loaded.</summary>
    public static (ulong Live, ulong Bytes, ulong Made) Memory()
    {
        var f = (delegate* unmanaged<ulong*, ulong*, ulong*, void>)NativeLibrary.GetExport(Driver().Library, "cudaswaStandInMemory");
        ulong live, bytes, made;
        f(&live, &bytes, &made);
        return (live, bytes, made);
    }
}
