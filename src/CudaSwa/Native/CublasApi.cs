using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>cuBLAS (cublas_api.h): column-major SGEMM for the linear layers.</summary>
internal static unsafe partial class CublasApi
{
    static CublasApi() => NativeLibraries.Register();

    public const int OpN = 0;
    public const int OpT = 1;
    public const int DefaultMath = 0;
    public const int Tf32TensorOpMath = 3;

    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasCreate_v2")] public static partial CublasStatus cublasCreate(IntPtr* handle);
    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasDestroy_v2")] public static partial CublasStatus cublasDestroy(IntPtr handle);
    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasSetStream_v2")] public static partial CublasStatus cublasSetStream(IntPtr handle, IntPtr stream);
    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasGetVersion_v2")] public static partial CublasStatus cublasGetVersion(IntPtr handle, int* version);
    [LibraryImport(NativeLibraries.Cublas)] public static partial CublasStatus cublasSetMathMode(IntPtr handle, int mode);
    [LibraryImport(NativeLibraries.Cublas)] public static partial byte* cublasGetStatusString(CublasStatus status);
    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasSgemm_v2")]
    public static partial CublasStatus cublasSgemm(IntPtr handle, int transa, int transb, int m, int n, int k,
        float* alpha, ulong a, int lda, ulong b, int ldb, float* beta, ulong c, int ldc);
}
