using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>
/// The CUDA driver API (cuda.h), exact C entry names (the _v2 variants are what cuda.h maps the
/// plain names to). CUdeviceptr is a 64-bit integer; handles are pointers.
/// </summary>
public static unsafe partial class CuDriver
{
    static CuDriver() => NativeLibraries.Register();

    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;

    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuInit(uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuDriverGetVersion(int* version);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuDeviceGetCount(int* count);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuDeviceGet(int* device, int ordinal);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuDeviceGetAttribute(int* value, int attribute, int device);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDeviceTotalMem_v2")] public static partial CuResult cuDeviceTotalMem(nuint* bytes, int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuDevicePrimaryCtxRetain(IntPtr* context, int device);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial CuResult cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuCtxSetCurrent(IntPtr context);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuCtxSynchronize();
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemGetInfo_v2")] public static partial CuResult cuMemGetInfo(nuint* free, nuint* total);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemAlloc_v2")] public static partial CuResult cuMemAlloc(ulong* pointer, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemFree_v2")] public static partial CuResult cuMemFree(ulong pointer);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemcpyHtoD_v2")] public static partial CuResult cuMemcpyHtoD(ulong destination, void* source, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemcpyDtoH_v2")] public static partial CuResult cuMemcpyDtoH(void* destination, ulong source, nuint bytes);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial CuResult cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuModuleLoadData(IntPtr* module, void* image);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuModuleUnload(IntPtr module);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuModuleGetFunction(IntPtr* function, IntPtr module, byte* name);
    [LibraryImport(NativeLibraries.Cuda)]
    public static partial CuResult cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, IntPtr stream, void** kernelParameters, void** extra);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuEventCreate(IntPtr* evt, uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuEventRecord(IntPtr evt, IntPtr stream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuEventSynchronize(IntPtr evt);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuEventDestroy_v2")] public static partial CuResult cuEventDestroy(IntPtr evt);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuGetErrorName(CuResult error, byte** name);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CuResult cuGetErrorString(CuResult error, byte** text);

    /// <summary>
    /// cuEventElapsedTime: CUDA 12.8+ exports cuEventElapsedTime_v2 and CUDA 13 headers map the
    /// plain name to it; older drivers only have cuEventElapsedTime. Resolved at run time.
    /// </summary>
    public static CuResult cuEventElapsedTime(float* milliseconds, IntPtr start, IntPtr end)
    {
        IntPtr f = NativeLibraries.Export(NativeLibraries.Cuda, "cuEventElapsedTime_v2");
        if (f == IntPtr.Zero) f = NativeLibraries.Export(NativeLibraries.Cuda, "cuEventElapsedTime");
        if (f == IntPtr.Zero) throw new EntryPointNotFoundException("libcuda exports neither cuEventElapsedTime_v2 nor cuEventElapsedTime.");
        return ((delegate* unmanaged<float*, IntPtr, IntPtr, CuResult>)f)(milliseconds, start, end);
    }
}
