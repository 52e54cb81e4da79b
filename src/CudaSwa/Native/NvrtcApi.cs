using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>NVRTC (nvrtc.h): run-time compilation of the kernels in kernels/*.cu.</summary>
internal static unsafe partial class NvrtcApi
{
    static NvrtcApi() => NativeLibraries.Register();

    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcVersion(int* major, int* minor);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetNumSupportedArchs(int* count);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetSupportedArchs(int* archs);
    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial NvrtcResult nvrtcCreateProgram(IntPtr* program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcCompileProgram(IntPtr program, int optionCount, byte** options);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetProgramLogSize(IntPtr program, nuint* size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetProgramLog(IntPtr program, byte* log);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetPTXSize(IntPtr program, nuint* size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetPTX(IntPtr program, byte* ptx);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetCUBINSize(IntPtr program, nuint* size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcGetCUBIN(IntPtr program, byte* cubin);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial NvrtcResult nvrtcDestroyProgram(IntPtr* program);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial byte* nvrtcGetErrorString(NvrtcResult result);
}
