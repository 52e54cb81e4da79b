// A stand-in for cuDNN 9's legacy API in tests: every entry point the engine binds, with the C
// signatures and enum values of cudnn_graph.h / cudnn_ops.h / cudnn_cnn.h, backed by the stand-in
// driver's host memory. Its arithmetic is written from NVIDIA's documentation of each call as
// naive loops that accumulate in float64 — never from the engine's CPU twins — so a
// misunderstanding in the engine is not copied into the reference it is tested against:
//   convolution    y[n,k,p,q] = sum over c,r,s of x[n,c,p*u-padH+r*dilH, q*v-padW+s*dilW] * w[k,c,r,s]
//                  (CUDNN_CROSS_CORRELATION; CUDNN_CONVOLUTION flips r and s), P = (H+2padH-((R-1)*dilH+1))/u + 1;
//                  backward data and backward filter are its two adjoints;
//   blending       out = alpha*result + beta*out, where beta = 0 never reads out (it may hold NaN);
//   batch norm     per channel over N*H*W = M values: mean, biased variance for the normalisation,
//                  running mean/variance = (1-f)*running + f*batch with the UNBIASED variance
//                  (times M/(M-1)), saved mean and saved 1/sqrt(var+eps); backward from the saved
//                  statistics (or recomputed from x when both are null).
// Strict where cuDNN is strict and beyond it: descriptors must be live and set, shapes must agree
// (output dimensions as cudnnGetConvolution2dForwardOutputDim gives them), every pointer must lie
// inside one live allocation large enough for its descriptor's extent (strides included), an
// output must not overlap an input, a workspace smaller than the size asked for is refused, a
// handle must have been given its stream (cudnnSetStream) before any work, and the stand-in has
// only the legacy default stream. Errors carry cuDNN 9's sub-codes (e.g. 2002 null pointer, 3002
// shape not supported) and a message for cudnnGetLastErrorString. TF32: where the math type allows
// tensor ops (TENSOR_OP_MATH or its conversion variant; DEFAULT_MATH for the algorithms the
// stand-in marks as tensor-op ones) the inputs are rounded to TF32 (10-bit mantissa) first.
//
// Algorithms. The stand-in computes every algorithm the same way; what differs is what Find,
// GetWorkspaceSize and the calls report and accept, modelled to exercise the engine's choice:
//   forward        IMPLICIT_GEMM (ws 0), IMPLICIT_PRECOMP_GEMM, GEMM (im2col ws) everywhere;
//                  WINOGRAD and WINOGRAD_NONFUSED for 3x3 stride-1 undilated filters; FFT and
//                  FFT_TILING for stride 1; DIRECT never (as in cuDNN). All deterministic.
//   backward data  ALGO_0 (non-deterministic) everywhere; ALGO_1 everywhere EXCEPT for 3x3 stride-1
//                  filters on maps of at most 8x8, where it reports NOT_SUPPORTED (so the engine's
//                  fallback to another deterministic algorithm runs: WINOGRAD_NONFUSED and FFT are
//                  there); WINOGRAD_NONFUSED, FFT, FFT_TILING as for forward.
//   backward filter ALGO_0 and ALGO_3 (non-deterministic) everywhere; ALGO_1 as backward data's;
//                  WINOGRAD_NONFUSED and FFT(_TILING) as above.
// Find reports them sorted by a modelled time in which the non-deterministic and the FFT /
// Winograd algorithms look fastest (so the engine's filters are what picks), and each with the
// math type it would run with; running an algorithm that Find reported on a descriptor whose math
// type differs from the one reported is refused (apply the chosen result's mathType).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>
#include "stand_in.h"

typedef int cudnnStatus_t;
typedef struct StandInCudnnHandle* cudnnHandle_t;
typedef struct StandInTensor* cudnnTensorDescriptor_t;
typedef struct StandInFilter* cudnnFilterDescriptor_t;
typedef struct StandInConvolution* cudnnConvolutionDescriptor_t;

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace
{
enum : cudnnStatus_t
{
    Success = 0,
    NotInitialized = 1001,
    BadParam = 2000,
    BadParamNullPointer = 2002,
    BadParamMisalignedPointer = 2003,
    BadParamOutOfBound = 2005,
    BadParamSizeInsufficient = 2006,
    BadParamStreamMismatch = 2007,
    BadParamShapeMismatch = 2008,
    NotSupported = 3000,
    NotSupportedShape = 3002,
    NotSupportedDataType = 3003,
    InternalError = 4000,
    ExecutionFailed = 5000,
    ExecutionFailedCudaDriver = 5001,
};

// cudnnDataType_t, cudnnTensorFormat_t, cudnnConvolutionMode_t, cudnnMathType_t, cudnnBatchNormMode_t
enum { DataFloat = 0, DataTypeLast = 15 };
enum { FormatNchw = 0, FormatNhwc = 1 };
enum { ModeConvolution = 0, ModeCrossCorrelation = 1 };
enum { DefaultMath = 0, TensorOpMath = 1, TensorOpMathAllowConversion = 2, FmaMath = 3 };
enum { BatchNormPerActivation = 0, BatchNormSpatial = 1, BatchNormSpatialPersistent = 2 };
enum { NonDeterministic = 0, Deterministic = 1 };

// cudnnConvolutionFwdAlgo_t / BwdDataAlgo_t / BwdFilterAlgo_t
enum { FwdImplicitGemm = 0, FwdImplicitPrecompGemm = 1, FwdGemm = 2, FwdDirect = 3, FwdFft = 4, FwdFftTiling = 5, FwdWinograd = 6, FwdWinogradNonfused = 7, FwdCount = 8 };
enum { BwdData0 = 0, BwdData1 = 1, BwdDataFft = 2, BwdDataFftTiling = 3, BwdDataWinograd = 4, BwdDataWinogradNonfused = 5, BwdDataCount = 6 };
enum { BwdFilter0 = 0, BwdFilter1 = 1, BwdFilterFft = 2, BwdFilter3 = 3, BwdFilterWinograd = 4, BwdFilterWinogradNonfused = 5, BwdFilterFftTiling = 6, BwdFilterCount = 7 };
enum Direction { Forward = 0, BackwardData = 1, BackwardFilter = 2 };

struct AlgoPerf // cudnnConvolutionFwdAlgoPerf_t (and its BwdData / BwdFilter twins: same layout)
{
    int algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
    int determinism;
    int mathType;
    int reserved[3];
};
static_assert(sizeof(AlgoPerf) == 48, "cudnnConvolution*AlgoPerf_t is 48 bytes");

struct Handle
{
    bool stream_set = false;
};

struct Tensor
{
    bool set = false;
    int dtype = 0;
    int n = 0, c = 0, h = 0, w = 0;
    long long sn = 0, sc = 0, sh = 0, sw = 0;
    long long extent() const { return (n - 1) * sn + (c - 1) * sc + (h - 1) * sh + (w - 1) * sw + 1; }
    long long at(int in, int ic, int ih, int iw) const { return in * sn + ic * sc + ih * sh + iw * sw; }
};

struct Filter
{
    bool set = false;
    int dtype = 0, format = 0;
    int k = 0, c = 0, r = 0, s = 0;
    long long at(int ik, int ic, int ir, int is) const
    {
        return format == FormatNchw ? ((long long)(ik * c + ic) * r + ir) * s + is : ((long long)(ik * r + ir) * s + is) * c + ic;
    }
    long long extent() const { return (long long)k * c * r * s; }
};

struct Convolution
{
    bool set = false;
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1, mode = ModeCrossCorrelation, compute = DataFloat;
    int math = DefaultMath;
    std::map<std::pair<int, int>, int> found_math; // (direction, algorithm) -> the math type Find reported
};

std::set<Handle*> g_handles;
std::set<Tensor*> g_tensors;
std::set<Filter*> g_filters;
std::set<Convolution*> g_convolutions;
thread_local std::string t_last_error;

cudnnStatus_t fail(cudnnStatus_t status, const std::string& message)
{
    t_last_error = message;
    return status;
}

// ---------------------------------------------------------------- argument checks

cudnnStatus_t need_handle(cudnnHandle_t h, const char* call)
{
    auto* handle = reinterpret_cast<Handle*>(h);
    if (!g_handles.count(handle)) return fail(BadParam, std::string(call) + ": not a live cuDNN handle");
    if (int r = standin::context_error())
        return fail(ExecutionFailedCudaDriver, std::string(call) + ": no healthy current CUDA context (driver error " + std::to_string(r) + ")");
    if (!handle->stream_set)
        return fail(BadParamStreamMismatch, std::string(call) + ": the handle is used before cudnnSetStream gave it its stream (the stand-in insists the stream be set explicitly)");
    return Success;
}

cudnnStatus_t need_tensor(cudnnTensorDescriptor_t d, const char* what, const Tensor*& out)
{
    auto* t = reinterpret_cast<Tensor*>(d);
    if (!g_tensors.count(t)) return fail(BadParam, std::string(what) + " is not a live tensor descriptor");
    if (!t->set) return fail(BadParam, std::string(what) + " was never set (cudnnSetTensor4dDescriptor)");
    if (t->dtype != DataFloat) return fail(NotSupportedDataType, std::string(what) + ": the stand-in supports CUDNN_DATA_FLOAT only");
    out = t;
    return Success;
}

cudnnStatus_t need_filter(cudnnFilterDescriptor_t d, const char* what, const Filter*& out)
{
    auto* f = reinterpret_cast<Filter*>(d);
    if (!g_filters.count(f)) return fail(BadParam, std::string(what) + " is not a live filter descriptor");
    if (!f->set) return fail(BadParam, std::string(what) + " was never set (cudnnSetFilter4dDescriptor)");
    if (f->dtype != DataFloat) return fail(NotSupportedDataType, std::string(what) + ": the stand-in supports CUDNN_DATA_FLOAT only");
    out = f;
    return Success;
}

cudnnStatus_t need_convolution(cudnnConvolutionDescriptor_t d, Convolution*& out)
{
    auto* c = reinterpret_cast<Convolution*>(d);
    if (!g_convolutions.count(c)) return fail(BadParam, "convDesc is not a live convolution descriptor");
    if (!c->set) return fail(BadParam, "convDesc was never set (cudnnSetConvolution2dDescriptor)");
    if (c->compute != DataFloat) return fail(NotSupportedDataType, "convDesc: the stand-in computes in CUDNN_DATA_FLOAT only");
    out = c;
    return Success;
}

// A device range the call reads or writes: non-null, 4-byte aligned, inside one live allocation.
cudnnStatus_t need_memory(unsigned long long p, long long elements, const char* what)
{
    if (p == 0) return fail(BadParamNullPointer, std::string(what) + " is a null pointer");
    if (p % 4 != 0) return fail(BadParamMisalignedPointer, std::string(what) + " (" + standin::hex(p) + ") is not aligned to its 4-byte element");
    size_t bytes = (size_t)elements * 4;
    if (!standin::inside(p, bytes))
        return fail(BadParamOutOfBound, std::string(what) + ": " + std::to_string(bytes) + " bytes from " + standin::hex(p) +
                                            " (the descriptor's extent) are not inside one live allocation");
    return Success;
}

bool overlap(unsigned long long a, long long a_elements, unsigned long long b, long long b_elements)
{
    return a < b + (unsigned long long)b_elements * 4 && b < a + (unsigned long long)a_elements * 4;
}

cudnnStatus_t no_overlap(unsigned long long out, long long out_elements, const char* out_name, unsigned long long in, long long in_elements, const char* in_name)
{
    if (in != 0 && overlap(out, out_elements, in, in_elements))
        return fail(BadParam, std::string(out_name) + " overlaps " + in_name + ": cuDNN's convolutions do not work in place");
    return Success;
}

// After a call: an out-of-range write by the stand-in itself would be a bug in the stand-in.
cudnnStatus_t finish(const char* call)
{
    std::string broken = standin::broken_red_zone();
    if (broken.empty()) return Success;
    standin::fault(std::string(call) + " made " + broken);
    return fail(ExecutionFailed, std::string(call) + " made " + broken);
}

float host_float(unsigned long long p, long long i) { return reinterpret_cast<const float*>(p)[i]; }

// ---------------------------------------------------------------- convolution geometry and algorithms

struct Geometry
{
    int n, c, h, w, k, r, s, p, q;
    int pad_h, pad_w, u, v, dil_h, dil_w;
    bool flip;
};

int output_size(int in, int pad, int filter, int dilation, int stride) { return (in + 2 * pad - ((filter - 1) * dilation + 1)) / stride + 1; }

// x, w, y descriptors against each other (y = dy, x = dx for the backward calls).
cudnnStatus_t geometry(const Tensor& x, const Filter& f, const Convolution& conv, const Tensor& y, Geometry& g)
{
    if (x.c != f.c) return fail(BadParamShapeMismatch, "the input has " + std::to_string(x.c) + " channels, the filter " + std::to_string(f.c) + " (groups = 1)");
    if (x.h + 2 * conv.pad_h < (f.r - 1) * conv.dil_h + 1 || x.w + 2 * conv.pad_w < (f.s - 1) * conv.dil_w + 1)
        return fail(BadParam, "the dilated filter is larger than the padded input");
    int p = output_size(x.h, conv.pad_h, f.r, conv.dil_h, conv.u), q = output_size(x.w, conv.pad_w, f.s, conv.dil_w, conv.v);
    if (y.n != x.n || y.c != f.k || y.h != p || y.w != q)
        return fail(BadParamShapeMismatch, "the output descriptor is " + std::to_string(y.n) + "x" + std::to_string(y.c) + "x" + std::to_string(y.h) + "x" +
                                               std::to_string(y.w) + ", the convolution gives " + std::to_string(x.n) + "x" + std::to_string(f.k) + "x" +
                                               std::to_string(p) + "x" + std::to_string(q));
    g = Geometry{x.n, x.c, x.h, x.w, f.k, f.r, f.s, p, q, conv.pad_h, conv.pad_w, conv.u, conv.v, conv.dil_h, conv.dil_w, conv.mode == ModeConvolution};
    return Success;
}

bool winograd_shape(const Geometry& g) { return g.r == 3 && g.s == 3 && g.u == 1 && g.v == 1 && g.dil_h == 1 && g.dil_w == 1; }
bool unit_stride(const Geometry& g) { return g.u == 1 && g.v == 1 && g.dil_h == 1 && g.dil_w == 1; }
// Where the stand-in withholds ALGO_1 of both backward passes (a deterministic alternative exists there).
bool withholds_algo1(const Geometry& g) { return winograd_shape(g) && (long long)g.h * g.w <= 64; }

struct Algorithm
{
    int algo;
    bool supported;
    bool deterministic;
    bool tensor_op; // has a TF32 tensor-core kernel in the stand-in's model
    size_t workspace;
    float time; // modelled milliseconds (smaller looks faster)
};

std::vector<Algorithm> algorithms(Direction d, const Geometry& g)
{
    size_t im2col = (size_t)g.c * g.r * g.s * g.p * g.q * 4;
    size_t fft = (size_t)(g.n + g.k) * g.c * (g.h + 2 * g.pad_h) * (g.w + 2 * g.pad_w) * 8;
    size_t winograd = (size_t)(g.n * g.c + g.k * g.c) * 36 * ((g.h + 3) / 4) * ((g.w + 3) / 4) * 4;
    bool wino = winograd_shape(g), unit = unit_stride(g), one = !withholds_algo1(g);
    switch (d)
    {
    case Forward:
        return {{FwdImplicitGemm, true, true, false, 0, 5.0f},
                {FwdImplicitPrecompGemm, true, true, true, (size_t)g.c * g.r * g.s * 8 + 256, 3.0f},
                {FwdGemm, true, true, false, im2col, 4.0f},
                {FwdDirect, false, true, false, 0, 9.0f},
                {FwdFft, unit, true, false, fft, 2.0f},
                {FwdFftTiling, unit, true, false, fft / 2, 2.5f},
                {FwdWinograd, wino, true, false, 0, 1.0f},
                {FwdWinogradNonfused, wino, true, true, winograd, 1.5f}};
    case BackwardData:
        return {{BwdData0, true, false, false, 0, 1.0f},
                {BwdData1, one, true, true, 0, 3.0f},
                {BwdDataFft, unit, true, false, fft, 2.0f},
                {BwdDataFftTiling, unit, true, false, fft / 2, 2.5f},
                {BwdDataWinograd, false, true, false, 0, 9.0f},
                {BwdDataWinogradNonfused, wino, true, true, winograd, 1.5f}};
    case BackwardFilter:
        return {{BwdFilter0, true, false, false, 0, 1.0f},
                {BwdFilter1, one, true, true, (size_t)g.k * g.c * g.r * g.s * 4, 3.0f},
                {BwdFilterFft, unit, true, false, fft, 2.0f},
                {BwdFilter3, true, false, false, 0, 1.2f},
                {BwdFilterWinograd, false, true, false, 0, 9.0f}, // cuDNN never implemented it
                {BwdFilterWinogradNonfused, wino, true, true, winograd, 1.5f},
                {BwdFilterFftTiling, unit, true, false, fft / 2, 2.5f}};
    }
    return {};
}

const char* direction_name(Direction d) { return d == Forward ? "forward" : d == BackwardData ? "backward data" : "backward filter"; }
int algorithm_count(Direction d) { return d == Forward ? (int)FwdCount : d == BackwardData ? (int)BwdDataCount : (int)BwdFilterCount; }

// The math type an algorithm runs with under the descriptor's setting.
int math_for(const Algorithm& a, int descriptor_math)
{
    if (descriptor_math == FmaMath) return FmaMath;
    if (descriptor_math == TensorOpMath || descriptor_math == TensorOpMathAllowConversion) return a.tensor_op ? descriptor_math : DefaultMath;
    return DefaultMath;
}

bool rounds_to_tf32(const Algorithm& a, int math) { return a.tensor_op && math != FmaMath; }

cudnnStatus_t find(Direction d, cudnnHandle_t handle, const Tensor* x, const Filter* f, cudnnConvolutionDescriptor_t convDesc, const Tensor* y,
                   int requested, int* returned, AlgoPerf* results, const char* call)
{
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    Convolution* conv;
    if (cudnnStatus_t r = need_convolution(convDesc, conv)) return r;
    Geometry g;
    if (cudnnStatus_t r = geometry(*x, *f, *conv, *y, g)) return r;
    if (requested < 1) return fail(BadParam, std::string(call) + ": requestedAlgoCount must be at least 1");
    if (!returned || !results) return fail(BadParamNullPointer, std::string(call) + ": returnedAlgoCount and perfResults must not be null");
    auto list = algorithms(d, g);
    std::stable_sort(list.begin(), list.end(), [](const Algorithm& a, const Algorithm& b) {
        if (a.supported != b.supported) return a.supported; // failures last, as cuDNN sorts them
        return a.time < b.time;
    });
    int n = std::min<int>(requested, (int)list.size());
    for (int i = 0; i < n; ++i)
    {
        const Algorithm& a = list[i];
        AlgoPerf p{};
        p.algo = a.algo;
        p.status = a.supported ? Success : NotSupportedShape;
        p.time = a.supported ? a.time : -1.0f;
        p.memory = a.supported ? a.workspace : 0;
        p.determinism = a.deterministic ? Deterministic : NonDeterministic;
        p.mathType = math_for(a, conv->math);
        results[i] = p;
        if (a.supported) conv->found_math[{d, a.algo}] = p.mathType;
    }
    *returned = n;
    return Success;
}

cudnnStatus_t workspace_size(Direction d, cudnnHandle_t handle, const Tensor* x, const Filter* f, cudnnConvolutionDescriptor_t convDesc, const Tensor* y,
                             int algo, size_t* bytes, const char* call)
{
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.count(h)) return fail(BadParam, std::string(call) + ": not a live cuDNN handle");
    Convolution* conv;
    if (cudnnStatus_t r = need_convolution(convDesc, conv)) return r;
    Geometry g;
    if (cudnnStatus_t r = geometry(*x, *f, *conv, *y, g)) return r;
    if (!bytes) return fail(BadParamNullPointer, std::string(call) + ": sizeInBytes is null");
    if (algo < 0 || algo >= algorithm_count(d)) return fail(BadParam, std::string(call) + ": " + std::to_string(algo) + " is not a " + direction_name(d) + " algorithm");
    for (const auto& a : algorithms(d, g))
        if (a.algo == algo)
        {
            if (!a.supported) return fail(NotSupportedShape, std::string(call) + ": " + direction_name(d) + " algorithm " + std::to_string(algo) + " does not support this shape");
            *bytes = a.workspace;
            return Success;
        }
    return fail(InternalError, "unreachable");
}

// The checks every convolution call shares; returns the algorithm's model and whether it reads TF32.
cudnnStatus_t prepare_run(Direction d, cudnnHandle_t handle, const Tensor* x, const Filter* f, cudnnConvolutionDescriptor_t convDesc, const Tensor* y,
                          int algo, unsigned long long workspace, size_t workspace_bytes, const float* alpha, const float* beta, Geometry& g, bool& round,
                          const char* call)
{
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    Convolution* conv;
    if (cudnnStatus_t r = need_convolution(convDesc, conv)) return r;
    if (cudnnStatus_t r = geometry(*x, *f, *conv, *y, g)) return r;
    if (!alpha || !beta) return fail(BadParamNullPointer, std::string(call) + ": alpha and beta must point to host floats");
    if (algo < 0 || algo >= algorithm_count(d)) return fail(BadParam, std::string(call) + ": " + std::to_string(algo) + " is not a " + direction_name(d) + " algorithm");
    for (const auto& a : algorithms(d, g))
    {
        if (a.algo != algo) continue;
        if (!a.supported) return fail(NotSupportedShape, std::string(call) + ": algorithm " + std::to_string(algo) + " does not support this shape");
        if (workspace_bytes < a.workspace)
            return fail(BadParamSizeInsufficient, std::string(call) + ": algorithm " + std::to_string(algo) + " needs " + std::to_string(a.workspace) +
                                                      " bytes of workspace, " + std::to_string(workspace_bytes) + " given");
        if (a.workspace > 0)
        {
            if (workspace == 0) return fail(BadParamNullPointer, std::string(call) + ": the workspace is null but the algorithm needs one");
            if (!standin::inside(workspace, workspace_bytes))
                return fail(BadParamOutOfBound, std::string(call) + ": the workspace (" + std::to_string(workspace_bytes) + " bytes from " + standin::hex(workspace) +
                                                    ") is not inside one live allocation");
        }
        auto found = conv->found_math.find({d, algo});
        if (found != conv->found_math.end() && found->second != conv->math)
            return fail(BadParam, std::string(call) + ": the descriptor's math type is " + std::to_string(conv->math) + " but cudnnFind reported algorithm " +
                                      std::to_string(algo) + " with math type " + std::to_string(found->second) +
                                      " (set the chosen result's mathType on the descriptor before running it)");
        round = rounds_to_tf32(a, math_for(a, conv->math));
        return Success;
    }
    return fail(InternalError, "unreachable");
}

float read(unsigned long long p, long long i, bool round)
{
    float v = host_float(p, i);
    return round ? standin::tf32(v) : v;
}

// Every tap of filter position (r, s): each output position (p, q) and the input position
// (ih, iw) = (p*u - padH + r*dilH, q*v - padW + s*dilW) it reads, where that lies inside the input.
// The three passes are this one index space, summed in different directions.
// The column range [lo, hi) is found once per tap so the inner loop has no bounds test.
template <class Visit> void taps(const Geometry& g, int r, int s, Visit visit)
{
    int offset = s * g.dil_w - g.pad_w;
    int lo = 0;
    while (lo < g.q && lo * g.v + offset < 0) ++lo;
    int hi = g.q;
    while (hi > lo && (hi - 1) * g.v + offset >= g.w) --hi;
    for (int p = 0; p < g.p; ++p)
    {
        int ih = p * g.u - g.pad_h + r * g.dil_h;
        if (ih < 0 || ih >= g.h) continue;
        for (int q = lo; q < hi; ++q) visit(p, q, ih, q * g.v + offset);
    }
}

// The filter element tap (r, s) multiplies: flipped for CUDNN_CONVOLUTION.
long long filter_at(const Filter& f, const Geometry& g, int k, int c, int r, int s)
{
    return f.at(k, c, g.flip ? g.r - 1 - r : r, g.flip ? g.s - 1 - s : s);
}

void store(unsigned long long out, long long i, double result, float alpha, float beta)
{
    auto* o = reinterpret_cast<float*>(out);
    double v = (double)alpha * result;
    if (beta != 0.0f) v += (double)beta * o[i];
    o[i] = (float)v;
}
} // namespace

// ---------------------------------------------------------------- identity, handles, errors

EXPORT const char* cudaswaStandInCudnn() { return "CudaSwa stand-in cuDNN: float64 loops on the stand-in driver's host memory"; }

EXPORT size_t cudnnGetVersion() { return 90000; }
EXPORT size_t cudnnGetCudartVersion() { return 11080; } // the CUDA major of the NVRTC the stand-in runs with (11.8)

EXPORT const char* cudnnGetErrorString(cudnnStatus_t status)
{
    switch (status)
    {
    case Success: return "CUDNN_STATUS_SUCCESS";
    case NotInitialized: return "CUDNN_STATUS_NOT_INITIALIZED";
    case BadParam: return "CUDNN_STATUS_BAD_PARAM";
    case BadParamNullPointer: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case BadParamMisalignedPointer: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case BadParamOutOfBound: return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
    case BadParamSizeInsufficient: return "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT";
    case BadParamStreamMismatch: return "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH";
    case BadParamShapeMismatch: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case NotSupported: return "CUDNN_STATUS_NOT_SUPPORTED";
    case NotSupportedShape: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case NotSupportedDataType: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case InternalError: return "CUDNN_STATUS_INTERNAL_ERROR";
    case ExecutionFailed: return "CUDNN_STATUS_EXECUTION_FAILED";
    case ExecutionFailedCudaDriver: return "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER";
    default: return "CUDNN_UNKNOWN_STATUS_FOUND";
    }
}

EXPORT void cudnnGetLastErrorString(char* message, size_t max_size)
{
    if (!message || max_size == 0) return;
    std::snprintf(message, max_size, "%s", t_last_error.c_str());
    t_last_error.clear();
}

EXPORT cudnnStatus_t cudnnCreate(cudnnHandle_t* handle)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (!handle) return fail(BadParamNullPointer, "cudnnCreate: handle is null");
    if (int r = standin::context_error()) return fail(NotInitialized, "cudnnCreate: no current CUDA context (driver error " + std::to_string(r) + ")");
    auto* h = new Handle();
    g_handles.insert(h);
    *handle = reinterpret_cast<cudnnHandle_t>(h);
    return Success;
}

EXPORT cudnnStatus_t cudnnDestroy(cudnnHandle_t handle)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.erase(h)) return fail(BadParam, "cudnnDestroy: not a live cuDNN handle");
    delete h;
    return Success;
}

EXPORT cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, void* stream)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* h = reinterpret_cast<Handle*>(handle);
    if (!g_handles.count(h)) return fail(BadParam, "cudnnSetStream: not a live cuDNN handle");
    if (stream != nullptr) return fail(BadParamStreamMismatch, "cudnnSetStream: the stand-in has only the legacy default stream (null)");
    h->stream_set = true;
    return Success;
}

// ---------------------------------------------------------------- descriptors

EXPORT cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* desc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (!desc) return fail(BadParamNullPointer, "cudnnCreateTensorDescriptor: null");
    auto* t = new Tensor();
    g_tensors.insert(t);
    *desc = reinterpret_cast<cudnnTensorDescriptor_t>(t);
    return Success;
}

EXPORT cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc, int format, int dataType, int n, int c, int h, int w)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* t = reinterpret_cast<Tensor*>(desc);
    if (!g_tensors.count(t)) return fail(BadParam, "cudnnSetTensor4dDescriptor: not a live tensor descriptor");
    if (format != FormatNchw && format != FormatNhwc) return fail(BadParam, "cudnnSetTensor4dDescriptor: format " + std::to_string(format) + " is not NCHW or NHWC");
    if (dataType < 0 || dataType > DataTypeLast) return fail(BadParam, "cudnnSetTensor4dDescriptor: data type " + std::to_string(dataType) + " is not a cudnnDataType_t");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return fail(BadParam, "cudnnSetTensor4dDescriptor: every dimension must be positive");
    t->set = true;
    t->dtype = dataType;
    t->n = n; t->c = c; t->h = h; t->w = w;
    if (format == FormatNchw) { t->sw = 1; t->sh = w; t->sc = (long long)h * w; t->sn = (long long)c * h * w; }
    else { t->sc = 1; t->sw = c; t->sh = (long long)w * c; t->sn = (long long)h * w * c; }
    return Success;
}

EXPORT cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* t = reinterpret_cast<Tensor*>(desc);
    if (t == nullptr) return Success; // cuDNN accepts null
    if (!g_tensors.erase(t)) return fail(BadParam, "cudnnDestroyTensorDescriptor: not a live tensor descriptor");
    delete t;
    return Success;
}

EXPORT cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* desc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (!desc) return fail(BadParamNullPointer, "cudnnCreateFilterDescriptor: null");
    auto* f = new Filter();
    g_filters.insert(f);
    *desc = reinterpret_cast<cudnnFilterDescriptor_t>(f);
    return Success;
}

// Note the argument order: the data type comes before the format (unlike the tensor descriptor).
EXPORT cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc, int dataType, int format, int k, int c, int h, int w)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* f = reinterpret_cast<Filter*>(desc);
    if (!g_filters.count(f)) return fail(BadParam, "cudnnSetFilter4dDescriptor: not a live filter descriptor");
    if (dataType < 0 || dataType > DataTypeLast) return fail(BadParam, "cudnnSetFilter4dDescriptor: data type " + std::to_string(dataType) + " is not a cudnnDataType_t");
    if (format != FormatNchw && format != FormatNhwc) return fail(BadParam, "cudnnSetFilter4dDescriptor: format " + std::to_string(format) + " is not NCHW or NHWC");
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return fail(BadParam, "cudnnSetFilter4dDescriptor: every dimension must be positive");
    f->set = true;
    f->dtype = dataType;
    f->format = format;
    f->k = k; f->c = c; f->r = h; f->s = w;
    return Success;
}

EXPORT cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* f = reinterpret_cast<Filter*>(desc);
    if (f == nullptr) return Success;
    if (!g_filters.erase(f)) return fail(BadParam, "cudnnDestroyFilterDescriptor: not a live filter descriptor");
    delete f;
    return Success;
}

EXPORT cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* desc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (!desc) return fail(BadParamNullPointer, "cudnnCreateConvolutionDescriptor: null");
    auto* c = new Convolution();
    g_convolutions.insert(c);
    *desc = reinterpret_cast<cudnnConvolutionDescriptor_t>(c);
    return Success;
}

EXPORT cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc, int pad_h, int pad_w, int u, int v, int dilation_h, int dilation_w,
                                                     int mode, int computeType)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* c = reinterpret_cast<Convolution*>(desc);
    if (!g_convolutions.count(c)) return fail(BadParam, "cudnnSetConvolution2dDescriptor: not a live convolution descriptor");
    if (pad_h < 0 || pad_w < 0) return fail(BadParam, "cudnnSetConvolution2dDescriptor: negative padding");
    if (u <= 0 || v <= 0) return fail(BadParam, "cudnnSetConvolution2dDescriptor: strides must be positive");
    if (dilation_h <= 0 || dilation_w <= 0) return fail(BadParam, "cudnnSetConvolution2dDescriptor: dilations must be positive");
    if (mode != ModeConvolution && mode != ModeCrossCorrelation) return fail(BadParam, "cudnnSetConvolution2dDescriptor: mode " + std::to_string(mode) + " is not a cudnnConvolutionMode_t");
    if (computeType < 0 || computeType > DataTypeLast) return fail(BadParam, "cudnnSetConvolution2dDescriptor: compute type " + std::to_string(computeType) + " is not a cudnnDataType_t");
    c->set = true;
    c->pad_h = pad_h; c->pad_w = pad_w; c->u = u; c->v = v; c->dil_h = dilation_h; c->dil_w = dilation_w;
    c->mode = mode;
    c->compute = computeType;
    c->found_math.clear();
    return Success;
}

EXPORT cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t desc, int mathType)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* c = reinterpret_cast<Convolution*>(desc);
    if (!g_convolutions.count(c)) return fail(BadParam, "cudnnSetConvolutionMathType: not a live convolution descriptor");
    if (mathType < DefaultMath || mathType > FmaMath) return fail(BadParam, "cudnnSetConvolutionMathType: " + std::to_string(mathType) + " is not a cudnnMathType_t");
    c->math = mathType;
    return Success;
}

EXPORT cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    auto* c = reinterpret_cast<Convolution*>(desc);
    if (c == nullptr) return Success;
    if (!g_convolutions.erase(c)) return fail(BadParam, "cudnnDestroyConvolutionDescriptor: not a live convolution descriptor");
    delete c;
    return Success;
}

// ---------------------------------------------------------------- algorithm search and workspace sizes

#define DESCRIPTORS(X, F, Y)                                                                      \
    const Tensor *tx, *ty;                                                                        \
    const Filter* tf;                                                                             \
    if (cudnnStatus_t r = need_tensor(X, #X, tx)) return r;                                       \
    if (cudnnStatus_t r = need_filter(F, #F, tf)) return r;                                       \
    if (cudnnStatus_t r = need_tensor(Y, #Y, ty)) return r;

EXPORT cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, cudnnFilterDescriptor_t wDesc,
                                                          cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t yDesc, int requestedAlgoCount,
                                                          int* returnedAlgoCount, AlgoPerf* perfResults)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(xDesc, wDesc, yDesc)
    return find(Forward, handle, tx, tf, convDesc, ty, requestedAlgoCount, returnedAlgoCount, perfResults, "cudnnFindConvolutionForwardAlgorithm");
}

EXPORT cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t handle, cudnnFilterDescriptor_t wDesc, cudnnTensorDescriptor_t dyDesc,
                                                               cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t dxDesc, int requestedAlgoCount,
                                                               int* returnedAlgoCount, AlgoPerf* perfResults)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(dxDesc, wDesc, dyDesc)
    return find(BackwardData, handle, tx, tf, convDesc, ty, requestedAlgoCount, returnedAlgoCount, perfResults, "cudnnFindConvolutionBackwardDataAlgorithm");
}

EXPORT cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, cudnnTensorDescriptor_t dyDesc,
                                                                 cudnnConvolutionDescriptor_t convDesc, cudnnFilterDescriptor_t dwDesc, int requestedAlgoCount,
                                                                 int* returnedAlgoCount, AlgoPerf* perfResults)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(xDesc, dwDesc, dyDesc)
    return find(BackwardFilter, handle, tx, tf, convDesc, ty, requestedAlgoCount, returnedAlgoCount, perfResults, "cudnnFindConvolutionBackwardFilterAlgorithm");
}

EXPORT cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, cudnnFilterDescriptor_t wDesc,
                                                             cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t yDesc, int algo, size_t* sizeInBytes)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(xDesc, wDesc, yDesc)
    return workspace_size(Forward, handle, tx, tf, convDesc, ty, algo, sizeInBytes, "cudnnGetConvolutionForwardWorkspaceSize");
}

EXPORT cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, cudnnFilterDescriptor_t wDesc, cudnnTensorDescriptor_t dyDesc,
                                                                  cudnnConvolutionDescriptor_t convDesc, cudnnTensorDescriptor_t dxDesc, int algo, size_t* sizeInBytes)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(dxDesc, wDesc, dyDesc)
    return workspace_size(BackwardData, handle, tx, tf, convDesc, ty, algo, sizeInBytes, "cudnnGetConvolutionBackwardDataWorkspaceSize");
}

EXPORT cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle, cudnnTensorDescriptor_t xDesc, cudnnTensorDescriptor_t dyDesc,
                                                                    cudnnConvolutionDescriptor_t convDesc, cudnnFilterDescriptor_t dwDesc, int algo, size_t* sizeInBytes)
{
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(xDesc, dwDesc, dyDesc)
    return workspace_size(BackwardFilter, handle, tx, tf, convDesc, ty, algo, sizeInBytes, "cudnnGetConvolutionBackwardFilterWorkspaceSize");
}

// ---------------------------------------------------------------- convolutions

EXPORT cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const float* alpha, cudnnTensorDescriptor_t xDesc, unsigned long long x,
                                             cudnnFilterDescriptor_t wDesc, unsigned long long w, cudnnConvolutionDescriptor_t convDesc, int algo,
                                             unsigned long long workspace, size_t workspaceBytes, const float* beta, cudnnTensorDescriptor_t yDesc,
                                             unsigned long long y)
{
    const char* call = "cudnnConvolutionForward";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(xDesc, wDesc, yDesc)
    Geometry g;
    bool round;
    if (cudnnStatus_t r = prepare_run(Forward, handle, tx, tf, convDesc, ty, algo, workspace, workspaceBytes, alpha, beta, g, round, call)) return r;
    if (cudnnStatus_t r = need_memory(x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = need_memory(w, tf->extent(), "w")) return r;
    if (cudnnStatus_t r = need_memory(y, ty->extent(), "y")) return r;
    if (cudnnStatus_t r = no_overlap(y, ty->extent(), "y", x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = no_overlap(y, ty->extent(), "y", w, tf->extent(), "w")) return r;
    float a = *alpha, b = *beta;
    const Tensor X = *tx, Y = *ty;
    const Filter F = *tf;
    standin::parallel_for((long long)g.n * g.k, [&](long long begin, long long end) {
        std::vector<double> acc((size_t)g.p * g.q);
        for (long long task = begin; task < end; ++task)
        {
            int n = (int)(task / g.k), k = (int)(task % g.k);
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int c = 0; c < g.c; ++c)
                for (int r = 0; r < g.r; ++r)
                    for (int s = 0; s < g.s; ++s)
                    {
                        double wv = read(w, filter_at(F, g, k, c, r, s), round);
                        taps(g, r, s, [&](int p, int q, int ih, int iw) { acc[(size_t)p * g.q + q] += wv * (double)read(x, X.at(n, c, ih, iw), round); });
                    }
            for (int p = 0; p < g.p; ++p)
                for (int q = 0; q < g.q; ++q) store(y, Y.at(n, k, p, q), acc[(size_t)p * g.q + q], a, b);
        }
    });
    return finish(call);
}

EXPORT cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const float* alpha, cudnnFilterDescriptor_t wDesc, unsigned long long w,
                                                  cudnnTensorDescriptor_t dyDesc, unsigned long long dy, cudnnConvolutionDescriptor_t convDesc, int algo,
                                                  unsigned long long workspace, size_t workspaceBytes, const float* beta, cudnnTensorDescriptor_t dxDesc,
                                                  unsigned long long dx)
{
    const char* call = "cudnnConvolutionBackwardData";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(dxDesc, wDesc, dyDesc)
    Geometry g;
    bool round;
    if (cudnnStatus_t r = prepare_run(BackwardData, handle, tx, tf, convDesc, ty, algo, workspace, workspaceBytes, alpha, beta, g, round, call)) return r;
    if (cudnnStatus_t r = need_memory(w, tf->extent(), "w")) return r;
    if (cudnnStatus_t r = need_memory(dy, ty->extent(), "dy")) return r;
    if (cudnnStatus_t r = need_memory(dx, tx->extent(), "dx")) return r;
    if (cudnnStatus_t r = no_overlap(dx, tx->extent(), "dx", dy, ty->extent(), "dy")) return r;
    if (cudnnStatus_t r = no_overlap(dx, tx->extent(), "dx", w, tf->extent(), "w")) return r;
    float a = *alpha, b = *beta;
    const Tensor DX = *tx, DY = *ty;
    const Filter F = *tf;
    // dx[n,c,ih,iw] gathers dy[n,k,p,q] * w[k,c,r,s] over every (k,p,q,r,s) whose forward read (ih,iw).
    standin::parallel_for((long long)g.n * g.c, [&](long long begin, long long end) {
        std::vector<double> acc((size_t)g.h * g.w);
        for (long long task = begin; task < end; ++task)
        {
            int n = (int)(task / g.c), c = (int)(task % g.c);
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int k = 0; k < g.k; ++k)
                for (int r = 0; r < g.r; ++r)
                    for (int s = 0; s < g.s; ++s)
                    {
                        double wv = read(w, filter_at(F, g, k, c, r, s), round);
                        taps(g, r, s, [&](int p, int q, int ih, int iw) { acc[(size_t)ih * g.w + iw] += wv * (double)read(dy, DY.at(n, k, p, q), round); });
                    }
            for (int ih = 0; ih < g.h; ++ih)
                for (int iw = 0; iw < g.w; ++iw) store(dx, DX.at(n, c, ih, iw), acc[(size_t)ih * g.w + iw], a, b);
        }
    });
    return finish(call);
}

EXPORT cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const float* alpha, cudnnTensorDescriptor_t xDesc, unsigned long long x,
                                                    cudnnTensorDescriptor_t dyDesc, unsigned long long dy, cudnnConvolutionDescriptor_t convDesc, int algo,
                                                    unsigned long long workspace, size_t workspaceBytes, const float* beta, cudnnFilterDescriptor_t dwDesc,
                                                    unsigned long long dw)
{
    const char* call = "cudnnConvolutionBackwardFilter";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    DESCRIPTORS(xDesc, dwDesc, dyDesc)
    Geometry g;
    bool round;
    if (cudnnStatus_t r = prepare_run(BackwardFilter, handle, tx, tf, convDesc, ty, algo, workspace, workspaceBytes, alpha, beta, g, round, call)) return r;
    if (cudnnStatus_t r = need_memory(x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = need_memory(dy, ty->extent(), "dy")) return r;
    if (cudnnStatus_t r = need_memory(dw, tf->extent(), "dw")) return r;
    if (cudnnStatus_t r = no_overlap(dw, tf->extent(), "dw", x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = no_overlap(dw, tf->extent(), "dw", dy, ty->extent(), "dy")) return r;
    float a = *alpha, b = *beta;
    const Tensor X = *tx, DY = *ty;
    const Filter F = *tf;
    // dw[k,c,r,s] = sum over n,p,q of dy[n,k,p,q] * x[n,c,p*u-pad+r*dil, q*v-pad+s*dil] (r, s flipped back for CUDNN_CONVOLUTION).
    standin::parallel_for((long long)g.k * g.c, [&](long long begin, long long end) {
        for (long long task = begin; task < end; ++task)
        {
            int k = (int)(task / g.c), c = (int)(task % g.c);
            for (int r = 0; r < g.r; ++r)
                for (int s = 0; s < g.s; ++s)
                {
                    double acc = 0;
                    for (int n = 0; n < g.n; ++n)
                        taps(g, r, s, [&](int p, int q, int ih, int iw) { acc += (double)read(dy, DY.at(n, k, p, q), round) * (double)read(x, X.at(n, c, ih, iw), round); });
                    store(dw, filter_at(F, g, k, c, r, s), acc, a, b);
                }
        }
    });
    return finish(call);
}

// ---------------------------------------------------------------- bias

// C = alpha*A + beta*C, each dimension of A equal to C's or 1 (broadcast).
EXPORT cudnnStatus_t cudnnAddTensor(cudnnHandle_t handle, const float* alpha, cudnnTensorDescriptor_t aDesc, unsigned long long A, const float* beta,
                                    cudnnTensorDescriptor_t cDesc, unsigned long long C)
{
    const char* call = "cudnnAddTensor";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    const Tensor *ta, *tc;
    if (cudnnStatus_t r = need_tensor(aDesc, "aDesc", ta)) return r;
    if (cudnnStatus_t r = need_tensor(cDesc, "cDesc", tc)) return r;
    if (!alpha || !beta) return fail(BadParamNullPointer, "cudnnAddTensor: alpha and beta must point to host floats");
    auto fits = [](int a, int c) { return a == c || a == 1; };
    if (!fits(ta->n, tc->n) || !fits(ta->c, tc->c) || !fits(ta->h, tc->h) || !fits(ta->w, tc->w))
        return fail(BadParamShapeMismatch, "cudnnAddTensor: each dimension of A must equal C's or be 1");
    if (cudnnStatus_t r = need_memory(A, ta->extent(), "A")) return r;
    if (cudnnStatus_t r = need_memory(C, tc->extent(), "C")) return r;
    if (cudnnStatus_t r = no_overlap(C, tc->extent(), "C", A, ta->extent(), "A")) return r;
    const Tensor TA = *ta, TC = *tc;
    float a = *alpha, b = *beta;
    for (int n = 0; n < TC.n; ++n)
        for (int c = 0; c < TC.c; ++c)
            for (int h = 0; h < TC.h; ++h)
                for (int w = 0; w < TC.w; ++w)
                    store(C, TC.at(n, c, h, w), host_float(A, TA.at(TA.n == 1 ? 0 : n, TA.c == 1 ? 0 : c, TA.h == 1 ? 0 : h, TA.w == 1 ? 0 : w)), a, b);
    return finish(call);
}

// db[k] = alpha * sum over n,h,w of dy[n,k,h,w] + beta * db[k]; db is 1xKx1x1.
EXPORT cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t handle, const float* alpha, cudnnTensorDescriptor_t dyDesc, unsigned long long dy,
                                                  const float* beta, cudnnTensorDescriptor_t dbDesc, unsigned long long db)
{
    const char* call = "cudnnConvolutionBackwardBias";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    const Tensor *tdy, *tdb;
    if (cudnnStatus_t r = need_tensor(dyDesc, "dyDesc", tdy)) return r;
    if (cudnnStatus_t r = need_tensor(dbDesc, "dbDesc", tdb)) return r;
    if (!alpha || !beta) return fail(BadParamNullPointer, "cudnnConvolutionBackwardBias: alpha and beta must point to host floats");
    if (tdb->n != 1 || tdb->c != tdy->c || tdb->h != 1 || tdb->w != 1) return fail(BadParamShapeMismatch, "cudnnConvolutionBackwardBias: dbDesc must be 1xCx1x1 with dy's C");
    if (cudnnStatus_t r = need_memory(dy, tdy->extent(), "dy")) return r;
    if (cudnnStatus_t r = need_memory(db, tdb->extent(), "db")) return r;
    if (cudnnStatus_t r = no_overlap(db, tdb->extent(), "db", dy, tdy->extent(), "dy")) return r;
    const Tensor DY = *tdy, DB = *tdb;
    float a = *alpha, b = *beta;
    for (int c = 0; c < DY.c; ++c)
    {
        double sum = 0;
        for (int n = 0; n < DY.n; ++n)
            for (int h = 0; h < DY.h; ++h)
                for (int w = 0; w < DY.w; ++w) sum += host_float(dy, DY.at(n, c, h, w));
        store(db, DB.at(0, c, 0, 0), sum, a, b);
    }
    return finish(call);
}

// ---------------------------------------------------------------- batch normalisation (spatial)

namespace
{
// The checks the three batch-norm calls share: x and the other data tensor of x's shape, the
// per-channel parameter descriptor 1xCx1x1, a supported mode.
cudnnStatus_t batch_norm_shapes(int mode, const Tensor* x, const Tensor* other, const char* other_name, const Tensor* bn, const char* call)
{
    if (mode == BatchNormPerActivation) return fail(NotSupported, std::string(call) + ": the stand-in implements the spatial modes only");
    if (mode != BatchNormSpatial && mode != BatchNormSpatialPersistent) return fail(BadParam, std::string(call) + ": mode " + std::to_string(mode) + " is not a cudnnBatchNormMode_t");
    if (other->n != x->n || other->c != x->c || other->h != x->h || other->w != x->w)
        return fail(BadParamShapeMismatch, std::string(call) + ": " + other_name + " must have x's dimensions");
    if (bn->n != 1 || bn->c != x->c || bn->h != 1 || bn->w != 1)
        return fail(BadParamShapeMismatch, std::string(call) + ": the scale/bias/mean/variance descriptor must be 1xCx1x1 with x's C (spatial mode)");
    return Success;
}

// Channel c's mean and biased variance over its N*H*W values, two passes in float64.
void moments(unsigned long long x, const Tensor& X, int c, double& mean, double& variance)
{
    double sum = 0;
    for (int n = 0; n < X.n; ++n)
        for (int h = 0; h < X.h; ++h)
            for (int w = 0; w < X.w; ++w) sum += host_float(x, X.at(n, c, h, w));
    long long m = (long long)X.n * X.h * X.w;
    mean = sum / (double)m;
    double squares = 0;
    for (int n = 0; n < X.n; ++n)
        for (int h = 0; h < X.h; ++h)
            for (int w = 0; w < X.w; ++w)
            {
                double d = host_float(x, X.at(n, c, h, w)) - mean;
                squares += d * d;
            }
    variance = squares / (double)m;
}
} // namespace

EXPORT cudnnStatus_t cudnnBatchNormalizationForwardTraining(cudnnHandle_t handle, int mode, const float* alpha, const float* beta,
                                                            cudnnTensorDescriptor_t xDesc, unsigned long long x, cudnnTensorDescriptor_t yDesc,
                                                            unsigned long long y, cudnnTensorDescriptor_t bnDesc, unsigned long long scale,
                                                            unsigned long long bias, double exponentialAverageFactor, unsigned long long runningMean,
                                                            unsigned long long runningVariance, double epsilon, unsigned long long saveMean,
                                                            unsigned long long saveInvVariance)
{
    const char* call = "cudnnBatchNormalizationForwardTraining";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    const Tensor *tx, *ty, *tbn;
    if (cudnnStatus_t r = need_tensor(xDesc, "xDesc", tx)) return r;
    if (cudnnStatus_t r = need_tensor(yDesc, "yDesc", ty)) return r;
    if (cudnnStatus_t r = need_tensor(bnDesc, "bnScaleBiasMeanVarDesc", tbn)) return r;
    if (cudnnStatus_t r = batch_norm_shapes(mode, tx, ty, "y", tbn, call)) return r;
    if (!alpha || !beta) return fail(BadParamNullPointer, std::string(call) + ": alpha and beta must point to host floats");
    if (!(epsilon >= 0)) return fail(BadParam, std::string(call) + ": epsilon must not be below CUDNN_BN_MIN_EPSILON (0)");
    if ((runningMean == 0) != (runningVariance == 0)) return fail(BadParam, std::string(call) + ": runningMean and runningVariance must both be given or both be null");
    if ((saveMean == 0) != (saveInvVariance == 0)) return fail(BadParam, std::string(call) + ": resultSaveMean and resultSaveInvVariance must both be given or both be null");
    if (runningMean != 0 && !(exponentialAverageFactor >= 0 && exponentialAverageFactor <= 1))
        return fail(BadParam, std::string(call) + ": exponentialAverageFactor " + std::to_string(exponentialAverageFactor) + " is outside [0, 1] (stand-in rule)");
    long long m = (long long)tx->n * tx->h * tx->w;
    if (m < 2) return fail(BadParam, std::string(call) + ": one value per channel: the unbiased running variance (times M/(M-1)) is undefined");
    long long c_count = tx->c;
    if (cudnnStatus_t r = need_memory(x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = need_memory(y, ty->extent(), "y")) return r;
    if (cudnnStatus_t r = need_memory(scale, c_count, "bnScale")) return r;
    if (cudnnStatus_t r = need_memory(bias, c_count, "bnBias")) return r;
    if (runningMean)
    {
        if (cudnnStatus_t r = need_memory(runningMean, c_count, "resultRunningMean")) return r;
        if (cudnnStatus_t r = need_memory(runningVariance, c_count, "resultRunningVariance")) return r;
    }
    if (saveMean)
    {
        if (cudnnStatus_t r = need_memory(saveMean, c_count, "resultSaveMean")) return r;
        if (cudnnStatus_t r = need_memory(saveInvVariance, c_count, "resultSaveInvVariance")) return r;
    }
    const Tensor X = *tx, Y = *ty;
    float a = *alpha, b = *beta;
    double f = exponentialAverageFactor;
    standin::parallel_for(c_count, [&](long long begin, long long end) {
        for (int c = (int)begin; c < (int)end; ++c)
        {
            double mean, variance;
            moments(x, X, c, mean, variance);
            double inv_std = 1.0 / std::sqrt(variance + epsilon);
            double gamma = host_float(scale, c), shift = host_float(bias, c);
            for (int n = 0; n < X.n; ++n)
                for (int h = 0; h < X.h; ++h)
                    for (int w = 0; w < X.w; ++w)
                        store(y, Y.at(n, c, h, w), gamma * (host_float(x, X.at(n, c, h, w)) - mean) * inv_std + shift, a, b);
            if (runningMean)
            {
                auto* rm = reinterpret_cast<float*>(runningMean);
                auto* rv = reinterpret_cast<float*>(runningVariance);
                rm[c] = (float)((1 - f) * rm[c] + f * mean);
                rv[c] = (float)((1 - f) * rv[c] + f * variance * (double)m / (double)(m - 1));
            }
            if (saveMean)
            {
                reinterpret_cast<float*>(saveMean)[c] = (float)mean;
                reinterpret_cast<float*>(saveInvVariance)[c] = (float)inv_std;
            }
        }
    });
    return finish(call);
}

EXPORT cudnnStatus_t cudnnBatchNormalizationForwardInference(cudnnHandle_t handle, int mode, const float* alpha, const float* beta,
                                                             cudnnTensorDescriptor_t xDesc, unsigned long long x, cudnnTensorDescriptor_t yDesc,
                                                             unsigned long long y, cudnnTensorDescriptor_t bnDesc, unsigned long long scale,
                                                             unsigned long long bias, unsigned long long estimatedMean, unsigned long long estimatedVariance,
                                                             double epsilon)
{
    const char* call = "cudnnBatchNormalizationForwardInference";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    const Tensor *tx, *ty, *tbn;
    if (cudnnStatus_t r = need_tensor(xDesc, "xDesc", tx)) return r;
    if (cudnnStatus_t r = need_tensor(yDesc, "yDesc", ty)) return r;
    if (cudnnStatus_t r = need_tensor(bnDesc, "bnScaleBiasMeanVarDesc", tbn)) return r;
    if (cudnnStatus_t r = batch_norm_shapes(mode, tx, ty, "y", tbn, call)) return r;
    if (!alpha || !beta) return fail(BadParamNullPointer, std::string(call) + ": alpha and beta must point to host floats");
    if (!(epsilon >= 0)) return fail(BadParam, std::string(call) + ": epsilon must not be below CUDNN_BN_MIN_EPSILON (0)");
    long long c_count = tx->c;
    if (cudnnStatus_t r = need_memory(x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = need_memory(y, ty->extent(), "y")) return r;
    if (cudnnStatus_t r = need_memory(scale, c_count, "bnScale")) return r;
    if (cudnnStatus_t r = need_memory(bias, c_count, "bnBias")) return r;
    if (cudnnStatus_t r = need_memory(estimatedMean, c_count, "estimatedMean")) return r;
    if (cudnnStatus_t r = need_memory(estimatedVariance, c_count, "estimatedVariance")) return r;
    const Tensor X = *tx, Y = *ty;
    float a = *alpha, b = *beta;
    standin::parallel_for(c_count, [&](long long begin, long long end) {
        for (int c = (int)begin; c < (int)end; ++c)
        {
            double mean = host_float(estimatedMean, c), inv_std = 1.0 / std::sqrt((double)host_float(estimatedVariance, c) + epsilon);
            double gamma = host_float(scale, c), shift = host_float(bias, c);
            for (int n = 0; n < X.n; ++n)
                for (int h = 0; h < X.h; ++h)
                    for (int w = 0; w < X.w; ++w)
                        store(y, Y.at(n, c, h, w), gamma * (host_float(x, X.at(n, c, h, w)) - mean) * inv_std + shift, a, b);
        }
    });
    return finish(call);
}

// dx = gamma*invStd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)), dScale = sum(dy*xhat), dBias = sum(dy), each blended with its alpha/beta pair.
EXPORT cudnnStatus_t cudnnBatchNormalizationBackward(cudnnHandle_t handle, int mode, const float* alphaDataDiff, const float* betaDataDiff,
                                                     const float* alphaParamDiff, const float* betaParamDiff, cudnnTensorDescriptor_t xDesc,
                                                     unsigned long long x, cudnnTensorDescriptor_t dyDesc, unsigned long long dy,
                                                     cudnnTensorDescriptor_t dxDesc, unsigned long long dx, cudnnTensorDescriptor_t bnDesc,
                                                     unsigned long long scale, unsigned long long scaleDiff, unsigned long long biasDiff, double epsilon,
                                                     unsigned long long savedMean, unsigned long long savedInvVariance)
{
    const char* call = "cudnnBatchNormalizationBackward";
    std::lock_guard<std::recursive_mutex> lock(standin::mutex());
    if (cudnnStatus_t r = need_handle(handle, call)) return r;
    const Tensor *tx, *tdy, *tdx, *tbn;
    if (cudnnStatus_t r = need_tensor(xDesc, "xDesc", tx)) return r;
    if (cudnnStatus_t r = need_tensor(dyDesc, "dyDesc", tdy)) return r;
    if (cudnnStatus_t r = need_tensor(dxDesc, "dxDesc", tdx)) return r;
    if (cudnnStatus_t r = need_tensor(bnDesc, "dBnScaleBiasDesc", tbn)) return r;
    if (cudnnStatus_t r = batch_norm_shapes(mode, tx, tdy, "dy", tbn, call)) return r;
    if (cudnnStatus_t r = batch_norm_shapes(mode, tx, tdx, "dx", tbn, call)) return r;
    if (!alphaDataDiff || !betaDataDiff || !alphaParamDiff || !betaParamDiff)
        return fail(BadParamNullPointer, std::string(call) + ": the four alpha/beta values must point to host floats");
    if (!(epsilon >= 0)) return fail(BadParam, std::string(call) + ": epsilon must not be below CUDNN_BN_MIN_EPSILON (0)");
    if ((savedMean == 0) != (savedInvVariance == 0)) return fail(BadParam, std::string(call) + ": savedMean and savedInvVariance must both be given or both be null");
    long long c_count = tx->c;
    if (cudnnStatus_t r = need_memory(x, tx->extent(), "x")) return r;
    if (cudnnStatus_t r = need_memory(dy, tdy->extent(), "dy")) return r;
    if (cudnnStatus_t r = need_memory(dx, tdx->extent(), "dx")) return r;
    if (cudnnStatus_t r = need_memory(scale, c_count, "bnScale")) return r;
    if (cudnnStatus_t r = need_memory(scaleDiff, c_count, "resultBnScaleDiff")) return r;
    if (cudnnStatus_t r = need_memory(biasDiff, c_count, "resultBnBiasDiff")) return r;
    if (savedMean)
    {
        if (cudnnStatus_t r = need_memory(savedMean, c_count, "savedMean")) return r;
        if (cudnnStatus_t r = need_memory(savedInvVariance, c_count, "savedInvVariance")) return r;
    }
    const Tensor X = *tx, DY = *tdy, DX = *tdx;
    float ad = *alphaDataDiff, bd = *betaDataDiff, ap = *alphaParamDiff, bp = *betaParamDiff;
    long long m = (long long)X.n * X.h * X.w;
    standin::parallel_for(c_count, [&](long long begin, long long end) {
        for (int c = (int)begin; c < (int)end; ++c)
        {
            double mean, inv_std;
            if (savedMean)
            {
                mean = host_float(savedMean, c);
                inv_std = host_float(savedInvVariance, c);
            }
            else
            {
                double variance;
                moments(x, X, c, mean, variance);
                inv_std = 1.0 / std::sqrt(variance + epsilon);
            }
            double sum_dy = 0, sum_dy_xhat = 0;
            for (int n = 0; n < X.n; ++n)
                for (int h = 0; h < X.h; ++h)
                    for (int w = 0; w < X.w; ++w)
                    {
                        double g = host_float(dy, DY.at(n, c, h, w));
                        sum_dy += g;
                        sum_dy_xhat += g * (host_float(x, X.at(n, c, h, w)) - mean) * inv_std;
                    }
            double gamma = host_float(scale, c);
            for (int n = 0; n < X.n; ++n)
                for (int h = 0; h < X.h; ++h)
                    for (int w = 0; w < X.w; ++w)
                    {
                        double xhat = (host_float(x, X.at(n, c, h, w)) - mean) * inv_std;
                        double g = host_float(dy, DY.at(n, c, h, w));
                        store(dx, DX.at(n, c, h, w), gamma * inv_std / (double)m * ((double)m * g - sum_dy - xhat * sum_dy_xhat), ad, bd);
                    }
            store(scaleDiff, c, sum_dy_xhat, ap, bp);
            store(biasDiff, c, sum_dy, ap, bp);
        }
    });
    return finish(call);
}
