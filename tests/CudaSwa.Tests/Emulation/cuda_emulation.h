// CUDA device code as host C++: what the CUDA headers and the GPU would supply, for running the
// unchanged kernels/*.cu on the CPU in the tests (clang++-14 -include cuda_emulation.h, never seen
// by NVRTC). The runtime (emulation_runtime.cpp) runs each CUDA thread as a fiber, the threads of a
// block taking turns on one OS thread and blocks side by side on the machine's cores, so:
//   - __syncthreads is a real barrier across the block's threads (threads that returned count as arrived);
//   - warp shuffles and votes exchange values through the warp's slots between two warp barriers
//     (converged warps only: every lane of the warp must take part, as in these kernels);
//   - __shared__ variables are thread-local function statics: one copy per OS thread, which runs one
//     block at a time;
//   - the fixed-rounding intrinsics keep their CUDA meaning even where the emulation is compiled
//     with FMA contraction on (__fmul_rn/__fadd_rn are never fused; fmaf is one rounding).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
#define __shared__ static thread_local

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
static const int warpSize = 32;

namespace emu
{
// Implemented by the runtime, for the calling emulated thread.
void syncthreads();
unsigned long long warp_exchange(unsigned mask, unsigned long long bits, int source_lane, bool own_if_outside, const char* what);
unsigned warp_ballot(unsigned mask, int predicate);
int lane_id();

template <class T> inline unsigned long long to_bits(T v)
{
    static_assert(sizeof(T) <= 8, "shuffles move at most 64 bits");
    unsigned long long b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}

template <class T> inline T from_bits(unsigned long long b)
{
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

// CUDA's source-lane rules for segments of `width` lanes (width a power of two <= 32): __shfl_sync
// wraps within the segment; down and up return the caller's own value past the segment's end or
// start; xor may read earlier segments but returns the caller's own value for later ones.
inline int segment_start(int width) { return lane_id() & ~(width - 1); }
} // namespace emu

static inline void __syncthreads() { emu::syncthreads(); }

template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    int lane = emu::lane_id(), src = lane ^ lane_mask, start = emu::segment_start(width);
    bool outside = src >= start + width;
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(v), outside ? lane : src, outside, "__shfl_xor_sync"));
}

template <class T> static inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32)
{
    int src = emu::segment_start(width) + (src_lane & (width - 1));
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(v), src, false, "__shfl_sync"));
}

template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = emu::lane_id(), src = lane + (int)delta, start = emu::segment_start(width);
    bool outside = src >= start + width;
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(v), outside ? lane : src, outside, "__shfl_down_sync"));
}

template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = emu::lane_id(), src = lane - (int)delta, start = emu::segment_start(width);
    bool outside = src < start;
    return emu::from_bits<T>(emu::warp_exchange(mask, emu::to_bits(v), outside ? lane : src, outside, "__shfl_up_sync"));
}

static inline unsigned __ballot_sync(unsigned mask, int predicate) { return emu::warp_ballot(mask, predicate); }
static inline int __any_sync(unsigned mask, int predicate) { return emu::warp_ballot(mask, predicate) != 0; }
static inline int __all_sync(unsigned mask, int predicate) { return emu::warp_ballot(mask, predicate) == emu::warp_ballot(mask, 1); }

// Integer and fixed-rounding float intrinsics with their CUDA semantics. The asm barrier keeps
// the compiler from fusing a rounded product or sum into a neighbouring FMA.
static inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline float __fmul_rn(float a, float b) { float r = a * b; asm("" : "+x"(r)); return r; }
static inline float __fadd_rn(float a, float b) { float r = a + b; asm("" : "+x"(r)); return r; }
static inline float __fsub_rn(float a, float b) { float r = a - b; asm("" : "+x"(r)); return r; }
static inline double __dsub_rn(double a, double b) { double r = a - b; asm("" : "+x"(r)); return r; }
static inline double __dsqrt_rn(double x) { double r = __builtin_sqrt(x); asm("" : "+x"(r)); return r; }
static inline float __fdiv_rn(float a, float b) { float r = a / b; asm("" : "+x"(r)); return r; }
static inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
static inline int __float_as_int(float x) { int r; std::memcpy(&r, &x, sizeof r); return r; }
static inline float __int_as_float(int x) { float r; std::memcpy(&r, &x, sizeof r); return r; }
static inline double __dmul_rn(double a, double b) { double r = a * b; asm("" : "+x"(r)); return r; }
static inline double __dadd_rn(double a, double b) { double r = a + b; asm("" : "+x"(r)); return r; }
static inline double __ddiv_rn(double a, double b) { double r = a / b; asm("" : "+x"(r)); return r; }

template <class T> static inline T atomicAdd(T* address, T value)
{
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}

static inline float atomicAdd(float* address, float value)
{
    float old = *address, desired;
    do { desired = old + value; } while (!__atomic_compare_exchange(address, &old, &desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}

static inline double atomicAdd(double* address, double value)
{
    double old = *address, desired;
    do { desired = old + value; } while (!__atomic_compare_exchange(address, &old, &desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}

// The registration of every kernel of a file, written after the file by the test's build step:
//   EMU_KERNEL("pointwise.cu", relu_forward)
#include "emulation_registry.h"
#define EMU_KERNEL(file, fn) static emu::Registrar emu_registrar_##fn(file, #fn, &fn);
