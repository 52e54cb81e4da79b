// A stand-in for cuBLAS in tests: the entry points the engine binds, with cublas_api.h's C
// signatures (`_v2` names) and enum values, backed by the stand-in driver's host memory. SGEMM is
// written from cuBLAS's documentation as a naive float64 loop:
//   C = alpha * op(A) * op(B) + beta * C, column-major, op(A) m x k, op(B) k x n, C m x n;
//   element (i, j) of a column-major matrix M with leading dimension ld is M[i + j*ld];
//   op(X) = X for CUBLAS_OP_N, its transpose for CUBLAS_OP_T (and CUBLAS_OP_C, real data);
//   beta = 0 never reads C; alpha = 0 or k = 0 never reads A and B.
// Strict where cuBLAS is (CUBLAS_STATUS_INVALID_VALUE for negative sizes, leading dimensions below
// the rows stored, unknown operations or math modes) and beyond: A, B and C must each lie inside
// one live allocation for the whole extent their sizes and leading dimensions span, C must not
// overlap A or B, the handle must have been given its stream (cublasSetStream) before any work,
// and the stand-in has only the legacy default stream. Each refusal also goes to stderr with the
// reason, as cuBLAS has no last-error string. CUBLAS_TF32_TENSOR_OP_MATH rounds A and B to TF32.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>
#include "stand_in.h"

typedef int cublasStatus_t;
typedef struct StandInCublasHandle* cublasHandle_t;

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace
{
enum : cublasStatus_t
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
};

enum { OpN = 0, OpT = 1, OpC = 2 };
enum { DefaultMath = 0, TensorOpMath = 1, PedanticMath = 2, Tf32TensorOpMath = 3, DisallowReducedPrecisionReduction = 16 };

struct Handle
{
    bool stream_set = false;
    int math = DefaultMath;
};

std::set<Handle*> g_handles;
thread_local std::string t_last_error;

cublasStatus_t fail(cublasStatus_t status, const std::string& message)
{
    t_last_error = message;
    std::fprintf(stderr, "stand-in cuBLAS: %s\n", message.c_str());
    return status;
}

// The elements a column-major rows x cols matrix with leading dimension ld spans (0 when empty).
long long span(int rows, int cols, int ld) { return rows == 0 || cols == 0 ? 0 : (long long)(cols - 1) * ld + rows; }

cublasStatus_t need_matrix(unsigned long long p, long long elements, const char* what)
{
    if (elements == 0) return Success;
    if (p == 0) return fail(InvalidValue, std::string("cublasSgemm: ") + what + " is a null pointer");
    if (p % 4 != 0) return fail(InvalidValue, std::string("cublasSgemm: ") + what + " is not 4-byte aligned");
    if (!standin::inside(p, (size_t)elements * 4))
        return fail(InvalidValue, std::string("cublasSgemm: ") + what + ": " + std::to_string(elements * 4) + " bytes from " + standin::hex(p) +
                                      " (its extent by size and leading dimension) are not inside one live allocation");
    return Success;
}
} // namespace

EXPORT const char* cudaswaStandInCublas() { return "CudaSwa stand-in cuBLAS: float64 loops on the stand-in driver's host memory"; }

/// The last refusal's reason (tests read it; cuBLAS itself has no such call).
EXPORT const char* cudaswaStandInCublasLastError() { return t_last_error.c_str(); }

EXPORT cublasStatus_t cublasGetProperty(int type, int* value)
{
    if (!value) return InvalidValue;
    switch (type) // MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL: the CUDA 11 cuBLAS the stand-in pairs with NVRTC 11.8
    {
    case 0: *value = 11; return Success;
    case 1: *value = 0; return Success;
    case 2: *value = 0; return Success;
    default: return InvalidValue;
    }
}

EXPORT const char* cublasGetStatusString(cublasStatus_t status)
{
    switch (status)
    {
    case Success: return "CUBLAS_STATUS_SUCCESS";
    case NotInitialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case AllocFailed: return "CUBLAS_STATUS_ALLOC_FAILED";
    case InvalidValue: return "CUBLAS_STATUS_INVALID_VALUE";
    case ArchMismatch: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case MappingError: return "CUBLAS_STATUS_MAPPING_ERROR";
    case ExecutionFailed: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case InternalError: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case NotSupported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN_ERROR";
    }
}

EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t* handle)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (!handle) return fail(InvalidValue, "cublasCreate: handle is null");
    if (int r = standin::context_error()) return fail(NotInitialized, "cublasCreate: no current CUDA context (driver error " + std::to_string(r) + ")");
    auto* h = new Handle();
    g_handles.insert(h);
    *handle = reinterpret_cast<cublasHandle_t>(h);
    return Success;
}

EXPORT cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.erase(h)) return fail(NotInitialized, "cublasDestroy: not a live cuBLAS handle");
    delete h;
    return Success;
}

EXPORT cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.count(h)) return fail(NotInitialized, "cublasSetStream: not a live cuBLAS handle");
    if (stream != nullptr) return fail(InvalidValue, "cublasSetStream: the stand-in has only the legacy default stream (null)");
    h->stream_set = true;
    return Success;
}

EXPORT cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (!g_handles.count(reinterpret_cast<Handle*>(handle))) return fail(NotInitialized, "cublasGetVersion: not a live cuBLAS handle");
    if (!version) return fail(InvalidValue, "cublasGetVersion: version is null");
    *version = 110000;
    return Success;
}

EXPORT cublasStatus_t cublasSetMathMode(cublasHandle_t handle, int mode)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.count(h)) return fail(NotInitialized, "cublasSetMathMode: not a live cuBLAS handle");
    int base = mode & ~DisallowReducedPrecisionReduction;
    if (base < DefaultMath || base > Tf32TensorOpMath) return fail(InvalidValue, "cublasSetMathMode: " + std::to_string(mode) + " is not a cublasMath_t");
    h->math = base;
    return Success;
}

EXPORT cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, int transa, int transb, int m, int n, int k, const float* alpha, unsigned long long A, int lda,
                                     unsigned long long B, int ldb, const float* beta, unsigned long long C, int ldc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.count(h)) return fail(NotInitialized, "cublasSgemm: not a live cuBLAS handle");
    if (int r = standin::context_error()) return fail(ExecutionFailed, "cublasSgemm: no healthy current CUDA context (driver error " + std::to_string(r) + ")");
    if (!h->stream_set) return fail(NotInitialized, "cublasSgemm: the handle is used before cublasSetStream gave it its stream (the stand-in insists the stream be set explicitly)");
    if (transa < OpN || transa > OpC || transb < OpN || transb > OpC) return fail(InvalidValue, "cublasSgemm: transa/transb must be CUBLAS_OP_N, _T or _C");
    if (m < 0 || n < 0 || k < 0) return fail(InvalidValue, "cublasSgemm: m, n and k must not be negative");
    // Stored shapes: A is m x k (N) or k x m (T); B is k x n (N) or n x k (T).
    int a_rows = transa == OpN ? m : k, a_cols = transa == OpN ? k : m;
    int b_rows = transb == OpN ? k : n, b_cols = transb == OpN ? n : k;
    if (lda < std::max(1, a_rows)) return fail(InvalidValue, "cublasSgemm: lda " + std::to_string(lda) + " is below the " + std::to_string(a_rows) + " rows A stores");
    if (ldb < std::max(1, b_rows)) return fail(InvalidValue, "cublasSgemm: ldb " + std::to_string(ldb) + " is below the " + std::to_string(b_rows) + " rows B stores");
    if (ldc < std::max(1, m)) return fail(InvalidValue, "cublasSgemm: ldc " + std::to_string(ldc) + " is below m = " + std::to_string(m));
    if (!alpha || !beta) return fail(InvalidValue, "cublasSgemm: alpha and beta must point to host floats");
    if (m == 0 || n == 0) return Success;
    float a = *alpha, b = *beta;
    bool reads_ab = a != 0.0f && k > 0;
    long long a_span = reads_ab ? span(a_rows, a_cols, lda) : 0, b_span = reads_ab ? span(b_rows, b_cols, ldb) : 0, c_span = span(m, n, ldc);
    if (cublasStatus_t r = need_matrix(A, a_span, "A")) return r;
    if (cublasStatus_t r = need_matrix(B, b_span, "B")) return r;
    if (cublasStatus_t r = need_matrix(C, c_span, "C")) return r;
    auto overlaps = [](unsigned long long p, long long pn, unsigned long long q, long long qn) { return pn > 0 && qn > 0 && p < q + qn * 4 && q < p + pn * 4; };
    if (overlaps(C, c_span, A, a_span) || overlaps(C, c_span, B, b_span)) return fail(InvalidValue, "cublasSgemm: C overlaps A or B");
    bool round = h->math == Tf32TensorOpMath;
    const float* pa = reinterpret_cast<const float*>(A);
    const float* pb = reinterpret_cast<const float*>(B);
    float* pc = reinterpret_cast<float*>(C);
    auto opA = [&](int i, int l) { float v = transa == OpN ? pa[i + (long long)l * lda] : pa[l + (long long)i * lda]; return (double)(round ? standin::tf32(v) : v); };
    auto opB = [&](int l, int j) { float v = transb == OpN ? pb[l + (long long)j * ldb] : pb[j + (long long)l * ldb]; return (double)(round ? standin::tf32(v) : v); };
    standin::parallel_for(n, [&](long long begin, long long end) {
        for (int j = (int)begin; j < (int)end; ++j)
            for (int i = 0; i < m; ++i)
            {
                double sum = 0;
                if (reads_ab)
                    for (int l = 0; l < k; ++l) sum += opA(i, l) * opB(l, j);
                double v = (double)a * sum;
                if (b != 0.0f) v += (double)b * pc[i + (long long)j * ldc];
                pc[i + (long long)j * ldc] = (float)v;
            }
    });
    std::string broken = standin::broken_red_zone();
    if (!broken.empty())
    {
        standin::fault("cublasSgemm made " + broken);
        return fail(ExecutionFailed, "cublasSgemm made " + broken);
    }
    return Success;
}
