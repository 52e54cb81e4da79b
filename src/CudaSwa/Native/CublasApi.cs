using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CudaSwa.Cuda;

namespace CudaSwa.Native;

/// <summary>
/// cuBLAS (cublas_api.h): column-major SGEMM for the linear layers, with the exact `_v2` entry
/// names cublas_v2.h maps the plain ones to. A table read from ONE loaded library, as
/// <see cref="CudnnApi"/> and <see cref="CuDriver"/> are.
/// </summary>
internal sealed unsafe class CublasApi
{
    public const int OpN = 0;
    public const int OpT = 1;
    public const int DefaultMath = 0;
    public const int Tf32TensorOpMath = 3;

    private CublasApi(IntPtr library, string path)
    {
        Library = library;
        Path = path;
        IntPtr Need(string symbol) => NativeLibrary.TryGetExport(library, symbol, out var f) ? f
            : throw new EntryPointNotFoundException($"{path} does not export {symbol} (not cuBLAS 11 or newer)");
        IntPtr Optional(string symbol) => NativeLibrary.TryGetExport(library, symbol, out var f) ? f : IntPtr.Zero;

        cublasCreate = (delegate* unmanaged<IntPtr*, CublasStatus>)Need("cublasCreate_v2");
        cublasDestroy = (delegate* unmanaged<IntPtr, CublasStatus>)Need("cublasDestroy_v2");
        cublasSetStream = (delegate* unmanaged<IntPtr, IntPtr, CublasStatus>)Need("cublasSetStream_v2");
        cublasGetVersion = (delegate* unmanaged<IntPtr, int*, CublasStatus>)Need("cublasGetVersion_v2");
        cublasSetMathMode = (delegate* unmanaged<IntPtr, int, CublasStatus>)Need("cublasSetMathMode");
        cublasGetStatusString = (delegate* unmanaged<CublasStatus, byte*>)Optional("cublasGetStatusString"); // cuBLAS 11.4+
        cublasSgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, ulong, int, ulong, int, float*, ulong, int, CublasStatus>)Need("cublasSgemm_v2");
    }

    /// <summary>The file the entry points come from.</summary>
    public string Path { get; }

    public IntPtr Library { get; }

    /// <summary>The entry points of an already loaded cuBLAS.</summary>
    public static CublasApi From(IntPtr library, string path) => new(library, path);

    public readonly delegate* unmanaged<IntPtr*, CublasStatus> cublasCreate;
    public readonly delegate* unmanaged<IntPtr, CublasStatus> cublasDestroy;
    public readonly delegate* unmanaged<IntPtr, IntPtr, CublasStatus> cublasSetStream;
    public readonly delegate* unmanaged<IntPtr, int*, CublasStatus> cublasGetVersion;
    public readonly delegate* unmanaged<IntPtr, int, CublasStatus> cublasSetMathMode;

    /// <summary>Null before cuBLAS 11.4.</summary>
    public readonly delegate* unmanaged<CublasStatus, byte*> cublasGetStatusString;

    /// <summary>(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc): C = alpha*op(A)*op(B) + beta*C, column-major.</summary>
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, float*, ulong, int, ulong, int, float*, ulong, int, CublasStatus> cublasSgemm;

    /// <summary>Throws <see cref="CudaException"/> naming the failed call and cuBLAS's own text for the status.</summary>
    public void Check(CublasStatus status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == CublasStatus.Success) return;
        string text = cublasGetStatusString != null ? NativeLibraries.PtrToString(cublasGetStatusString(status)) ?? status.ToString() : status.ToString();
        throw new CudaException($"{call} failed: {text} ({(int)status})");
    }
}
