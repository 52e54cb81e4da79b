using System.Runtime.CompilerServices;
using CudaSwa.Cuda;

namespace CudaSwa.Native;

/// <summary>CUresult values that need a name in messages (the rest print as numbers, with the driver's own string).</summary>
internal enum CuResult
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    Deinitialized = 4,
    NoDevice = 100,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    NoBinaryForGpu = 209,
    UnsupportedPtxVersion = 222,
    InvalidPtx = 218,
    NotFound = 500,
    IllegalAddress = 700,
    LaunchOutOfResources = 701,
    LaunchFailed = 719,
    StubLibrary = 34,
    SystemDriverMismatch = 803,
    CompatNotSupportedOnDevice = 804,
}

internal enum NvrtcResult
{
    Success = 0,
    OutOfMemory = 1,
    ProgramCreationFailure = 2,
    InvalidInput = 3,
    InvalidProgram = 4,
    InvalidOption = 5,
    Compilation = 6,
}

internal enum CublasStatus
{
    Success = 0,
    NotInitialized = 1,
    AllocFailed = 3,
    InvalidValue = 7,
    ArchMismatch = 8,
    MappingError = 11,
    ExecutionFailed = 13,
    InternalError = 14,
    NotSupported = 15,
}

internal enum CudnnStatus
{
    Success = 0,
    NotInitialized = 1001,
    SublibraryVersionMismatch = 1002,
    BadParam = 2000,
    NotSupported = 3000,
    InternalError = 4000,
    ExecutionFailed = 5000,
}

/// <summary>
/// ThrowIfFailed (ILGPU style) for NVRTC, the one library bound by name; driver, cuBLAS and cuDNN calls are checked by
/// their tables (<see cref="CuDriver.Check"/>, <see cref="CublasApi.Check"/>, <see cref="CudnnApi.Check"/>).
/// </summary>
internal static unsafe class Check
{
    public static void Nvrtc(NvrtcResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result == NvrtcResult.Success) return;
        throw new CudaException($"{call} failed: {NativeLibraries.PtrToString(NvrtcApi.nvrtcGetErrorString(result)) ?? ((int)result).ToString()}");
    }
}
