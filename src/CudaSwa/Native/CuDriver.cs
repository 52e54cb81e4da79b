using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

using CudaSwa.Cuda;

namespace CudaSwa.Native;

/// <summary>
/// The CUDA driver API (cuda.h) as a table of entry points read from ONE loaded driver library,
/// with exact C entry names (the _v2 variants are what cuda.h maps the plain names to).
/// CUdeviceptr is a 64-bit integer; handles are pointers. An instance rather than static imports,
/// so the driver a device was opened with is the one every later call goes to: the NVIDIA driver
/// found by <see cref="NativeLibraries"/> in production, or a driver library named by its full
/// path (tests load a host-memory stand-in this way, side by side with a real driver).
/// </summary>
internal sealed unsafe class CuDriver
{
    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;

    private static readonly object s_gate = new();
    private static CuDriver? s_system;

    private CuDriver(IntPtr library, string path)
    {
        Library = library;
        Path = path;
        IntPtr Need(string symbol) => NativeLibrary.TryGetExport(library, symbol, out var f) ? f
            : throw new EntryPointNotFoundException($"{path} does not export {symbol} (a CUDA driver older than 11.0, or not a CUDA driver)");
        IntPtr Optional(string symbol) => NativeLibrary.TryGetExport(library, symbol, out var f) ? f : IntPtr.Zero;

        cuInit = (delegate* unmanaged<uint, CuResult>)Need("cuInit");
        cuDriverGetVersion = (delegate* unmanaged<int*, CuResult>)Need("cuDriverGetVersion");
        cuDeviceGetCount = (delegate* unmanaged<int*, CuResult>)Need("cuDeviceGetCount");
        cuDeviceGet = (delegate* unmanaged<int*, int, CuResult>)Need("cuDeviceGet");
        cuDeviceGetName = (delegate* unmanaged<byte*, int, int, CuResult>)Need("cuDeviceGetName");
        cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, CuResult>)Need("cuDeviceGetAttribute");
        cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, CuResult>)Need("cuDeviceTotalMem_v2");
        cuDevicePrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, CuResult>)Need("cuDevicePrimaryCtxRetain");
        cuDevicePrimaryCtxRelease = (delegate* unmanaged<int, CuResult>)Need("cuDevicePrimaryCtxRelease_v2");
        cuCtxSetCurrent = (delegate* unmanaged<IntPtr, CuResult>)Need("cuCtxSetCurrent");
        cuCtxGetCurrent = (delegate* unmanaged<IntPtr*, CuResult>)Need("cuCtxGetCurrent");
        cuCtxSynchronize = (delegate* unmanaged<CuResult>)Need("cuCtxSynchronize");
        cuMemGetInfo = (delegate* unmanaged<nuint*, nuint*, CuResult>)Need("cuMemGetInfo_v2");
        cuMemAlloc = (delegate* unmanaged<ulong*, nuint, CuResult>)Need("cuMemAlloc_v2");
        cuMemFree = (delegate* unmanaged<ulong, CuResult>)Need("cuMemFree_v2");
        cuMemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, CuResult>)Need("cuMemcpyHtoD_v2");
        cuMemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, CuResult>)Need("cuMemcpyDtoH_v2");
        cuMemcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, IntPtr, CuResult>)Need("cuMemcpyDtoDAsync_v2");
        cuMemsetD32Async = (delegate* unmanaged<ulong, uint, nuint, IntPtr, CuResult>)Need("cuMemsetD32Async");
        cuModuleLoadData = (delegate* unmanaged<IntPtr*, void*, CuResult>)Need("cuModuleLoadData");
        cuModuleUnload = (delegate* unmanaged<IntPtr, CuResult>)Need("cuModuleUnload");
        cuModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, CuResult>)Need("cuModuleGetFunction");
        cuLaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, CuResult>)Need("cuLaunchKernel");
        cuEventCreate = (delegate* unmanaged<IntPtr*, uint, CuResult>)Need("cuEventCreate");
        cuEventRecord = (delegate* unmanaged<IntPtr, IntPtr, CuResult>)Need("cuEventRecord");
        cuEventSynchronize = (delegate* unmanaged<IntPtr, CuResult>)Need("cuEventSynchronize");
        cuEventDestroy = (delegate* unmanaged<IntPtr, CuResult>)Need("cuEventDestroy_v2");
        // CUDA 12.8+ exports cuEventElapsedTime_v2 (CUDA 13 headers map the plain name to it); older drivers only the plain one.
        IntPtr elapsed = Optional("cuEventElapsedTime_v2");
        cuEventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, CuResult>)(elapsed != IntPtr.Zero ? elapsed : Need("cuEventElapsedTime"));
        cuGetErrorName = (delegate* unmanaged<CuResult, byte**, CuResult>)Need("cuGetErrorName");
        cuGetErrorString = (delegate* unmanaged<CuResult, byte**, CuResult>)Need("cuGetErrorString");
        // CUDA 12.4+: the parameter layout of a loaded kernel, used to check every kernel's declared arguments at load time.
        cuFuncGetParamInfo = (delegate* unmanaged<IntPtr, nuint, nuint*, nuint*, CuResult>)Optional("cuFuncGetParamInfo");
    }

    /// <summary>The file the entry points come from.</summary>
    public string Path { get; }

    /// <summary>True for the tests' host-memory stand-in (it exports cudaswaStandInDriver), which must never pass for a GPU.</summary>
    public bool IsStandIn => NativeLibrary.TryGetExport(Library, "cudaswaStandInDriver", out _);

    public IntPtr Library { get; }

    public readonly delegate* unmanaged<uint, CuResult> cuInit;
    public readonly delegate* unmanaged<int*, CuResult> cuDriverGetVersion;
    public readonly delegate* unmanaged<int*, CuResult> cuDeviceGetCount;
    public readonly delegate* unmanaged<int*, int, CuResult> cuDeviceGet;
    public readonly delegate* unmanaged<byte*, int, int, CuResult> cuDeviceGetName;
    public readonly delegate* unmanaged<int*, int, int, CuResult> cuDeviceGetAttribute;
    public readonly delegate* unmanaged<nuint*, int, CuResult> cuDeviceTotalMem;
    public readonly delegate* unmanaged<IntPtr*, int, CuResult> cuDevicePrimaryCtxRetain;
    public readonly delegate* unmanaged<int, CuResult> cuDevicePrimaryCtxRelease;
    public readonly delegate* unmanaged<IntPtr, CuResult> cuCtxSetCurrent;
    public readonly delegate* unmanaged<IntPtr*, CuResult> cuCtxGetCurrent;
    public readonly delegate* unmanaged<CuResult> cuCtxSynchronize;
    public readonly delegate* unmanaged<nuint*, nuint*, CuResult> cuMemGetInfo;
    public readonly delegate* unmanaged<ulong*, nuint, CuResult> cuMemAlloc;
    public readonly delegate* unmanaged<ulong, CuResult> cuMemFree;
    public readonly delegate* unmanaged<ulong, void*, nuint, CuResult> cuMemcpyHtoD;
    public readonly delegate* unmanaged<void*, ulong, nuint, CuResult> cuMemcpyDtoH;
    public readonly delegate* unmanaged<ulong, ulong, nuint, IntPtr, CuResult> cuMemcpyDtoDAsync;
    public readonly delegate* unmanaged<ulong, uint, nuint, IntPtr, CuResult> cuMemsetD32Async;
    public readonly delegate* unmanaged<IntPtr*, void*, CuResult> cuModuleLoadData;
    public readonly delegate* unmanaged<IntPtr, CuResult> cuModuleUnload;
    public readonly delegate* unmanaged<IntPtr*, IntPtr, byte*, CuResult> cuModuleGetFunction;
    public readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, CuResult> cuLaunchKernel;
    public readonly delegate* unmanaged<IntPtr*, uint, CuResult> cuEventCreate;
    public readonly delegate* unmanaged<IntPtr, IntPtr, CuResult> cuEventRecord;
    public readonly delegate* unmanaged<IntPtr, CuResult> cuEventSynchronize;
    public readonly delegate* unmanaged<IntPtr, CuResult> cuEventDestroy;
    public readonly delegate* unmanaged<float*, IntPtr, IntPtr, CuResult> cuEventElapsedTime;
    public readonly delegate* unmanaged<CuResult, byte**, CuResult> cuGetErrorName;
    public readonly delegate* unmanaged<CuResult, byte**, CuResult> cuGetErrorString;

    /// <summary>Null where the driver is older than CUDA 12.4.</summary>
    public readonly delegate* unmanaged<IntPtr, nuint, nuint*, nuint*, CuResult> cuFuncGetParamInfo;

    /// <summary>
    /// The NVIDIA driver (libcuda.so.1), found by <see cref="NativeLibraries"/>; throws
    /// <see cref="DllNotFoundException"/> with every place tried when there is none.
    /// </summary>
    public static CuDriver System
    {
        get
        {
            lock (s_gate)
            {
                if (s_system is not null) return s_system;
                if (!NativeLibraries.TryLoad(NativeLibraries.Cuda, out var handle, out string where))
                    throw new DllNotFoundException($"the NVIDIA driver library libcuda.so.1 was not found ({NativeLibraries.Trace(NativeLibraries.Cuda)})");
                s_system = new CuDriver(handle, where);
                return s_system;
            }
        }
    }

    /// <summary>A driver library named by its full path (never searched for; e.g. a test stand-in).</summary>
    public static CuDriver FromFile(string path)
    {
        var handle = NativeLibraries.LoadFile(NativeLibraries.Cuda, path);
        return new CuDriver(handle, path);
    }

    /// <summary>Throws <see cref="CudaException"/> naming the failed call and the driver's own error name and text.</summary>
    public void Check(CuResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != CuResult.Success) throw new CudaException(Describe(result, call), (int)result);
    }

    /// <summary>"call failed: NAME (text)" with the driver's own words for the error.</summary>
    public string Describe(CuResult result, string call)
    {
        byte* name = null, text = null;
        cuGetErrorName(result, &name);
        cuGetErrorString(result, &text);
        return $"{call} failed: {NativeLibraries.PtrToString(name) ?? ((int)result).ToString()} ({NativeLibraries.PtrToString(text) ?? "no description"})";
    }
}
