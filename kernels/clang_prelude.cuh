// Only for the compile check with clang-14 (build.ps1 kernels, .ci/run via the tests): passed with
// -include on clang's command line, never seen by NVRTC. It supplies what the CUDA headers would,
// mapping the few device functions the kernels use to NVVM builtins. The PTX is checked, not run,
// so the approximate exp/log here need not match CUDA's accurate ones.
#pragma once
#include <__clang_cuda_builtin_vars.h>

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))

extern "C" __device__ void __syncthreads() __asm("llvm.nvvm.barrier0");

static __device__ __forceinline__ float __shfl_xor_sync(unsigned mask, float v, int lane, int width = 32) { return __nvvm_shfl_sync_bfly_f32(mask, v, lane, ((32 - width) << 8) | 0x1f); }
static __device__ __forceinline__ int __shfl_xor_sync(unsigned mask, int v, int lane, int width = 32) { return __nvvm_shfl_sync_bfly_i32(mask, v, lane, ((32 - width) << 8) | 0x1f); }
static __device__ __forceinline__ double __shfl_xor_sync(unsigned mask, double v, int lane, int width = 32)
{
    long long bits = __builtin_bit_cast(long long, v);
    int lo = __nvvm_shfl_sync_bfly_i32(mask, (int)bits, lane, ((32 - width) << 8) | 0x1f);
    int hi = __nvvm_shfl_sync_bfly_i32(mask, (int)(bits >> 32), lane, ((32 - width) << 8) | 0x1f);
    return __builtin_bit_cast(double, ((long long)hi << 32) | (unsigned int)lo);
}
static __device__ __forceinline__ unsigned int __umulhi(unsigned int a, unsigned int b) { return __nvvm_mulhi_ui(a, b); }
static __device__ __forceinline__ float atomicAdd(float* p, float v) { return __nvvm_atom_add_gen_f(p, v); }
static __device__ __forceinline__ float expf(float x) { return __nvvm_ex2_approx_f(x * 1.4426950408889634f); }
static __device__ __forceinline__ float logf(float x) { return __nvvm_lg2_approx_f(x) * 0.6931471805599453f; }
static __device__ __forceinline__ float sqrtf(float x) { return __nvvm_sqrt_rn_f(x); }
static __device__ __forceinline__ float fmaf(float a, float b, float c) { return __nvvm_fma_rn_f(a, b, c); }
static __device__ __forceinline__ float __fmul_rn(float a, float b) { return __nvvm_mul_rn_f(a, b); }
static __device__ __forceinline__ float __fadd_rn(float a, float b) { return __nvvm_add_rn_f(a, b); }
static __device__ __forceinline__ float __fsub_rn(float a, float b) { return __nvvm_add_rn_f(a, -b); }
static __device__ __forceinline__ float __fdiv_rn(float a, float b) { return __nvvm_div_rn_f(a, b); }
static __device__ __forceinline__ int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
static __device__ __forceinline__ float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
static __device__ __forceinline__ double __dmul_rn(double a, double b) { return __nvvm_mul_rn_d(a, b); }
static __device__ __forceinline__ double __dadd_rn(double a, double b) { return __nvvm_add_rn_d(a, b); }
static __device__ __forceinline__ double __dsub_rn(double a, double b) { return __nvvm_add_rn_d(a, -b); }
static __device__ __forceinline__ double __dsqrt_rn(double x) { return __nvvm_sqrt_rn_d(x); }
static __device__ __forceinline__ double __ddiv_rn(double a, double b) { return __nvvm_div_rn_d(a, b); }
static __device__ __forceinline__ float fmaxf(float a, float b) { return __nvvm_fmax_f(a, b); }
static __device__ __forceinline__ float fminf(float a, float b) { return __nvvm_fmin_f(a, b); }
