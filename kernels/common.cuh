// Shared by every kernel file: fixed-width names, Philox4x32-10 (the twin of src/CudaSwa/Util/Philox.cs)
// and a warp reduction. Plain CUDA C++ that both NVRTC and clang-14 (with clang_prelude.cuh) compile.
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

struct Philox4 { u32 x0, x1, x2, x3; };

// A 16-byte vector of floats (our own, so no CUDA header is needed).
struct alignas(16) f4 { float x, y, z, w; };

// Philox4x32-10 (Salmon et al. 2011): ten rounds, key bumped after each round. Must stay identical
// to Philox.Generate in C#: the CPU and GPU backends draw the same crops, flips and dropout masks.
__device__ __forceinline__ Philox4 philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1)
{
    for (int round = 0; round < 10; ++round)
    {
        u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        u32 n0 = hi1 ^ c1 ^ k0;
        u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    Philox4 r; r.x0 = c0; r.x1 = c1; r.x2 = c2; r.x3 = c3;
    return r;
}

__device__ __forceinline__ u32 philox_word(Philox4 b, int i)
{
    return i == 0 ? b.x0 : i == 1 ? b.x1 : i == 2 ? b.x2 : b.x3;
}

// A float in [0, 1) from the top 24 bits: exact in float32, identical to Philox.ToUniform.
__device__ __forceinline__ float philox_uniform(u32 word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Grid-stride loop over [0, n).
#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)blockDim.x * gridDim.x)

// Two standard normal draws from one Philox block (Box-Muller on its first two words, in double):
// the twin of Philox.NormalPair. u1 lies in (0, 1], so the logarithm is finite.
__device__ __forceinline__ void philox_normal_pair(Philox4 b, float* z0, float* z1)
{
    double u1 = ((double)(b.x0 >> 8) + 1.0) / 16777217.0;
    double u2 = (double)(b.x1 >> 8) / 16777216.0;
    double r = __dsqrt_rn(-2.0 * log(u1));
    double angle = 6.283185307179586 * u2;
    *z0 = (float)(r * cos(angle));
    *z1 = (float)(r * sin(angle));
}
