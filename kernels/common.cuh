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

// A 256-thread block's two double partial sums, tree-reduced in a fixed order through the shared
// arrays a and b (256 each); a[0] and b[0] hold the totals after the call, for every thread.
__device__ __forceinline__ void block_sum2(double* a, double* b, double va, double vb)
{
    int t = threadIdx.x;
    a[t] = va;
    b[t] = vb;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1)
    {
        if (t < s) { a[t] += a[t + s]; b[t] += b[t + s]; }
        __syncthreads();
    }
}

// Grid-stride loop over [0, n).
#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)blockDim.x * gridDim.x)

// Two standard normal draws from one Philox block: Box-Muller on its first two words in float32
// from IEEE basic operations only, each pinned (no contraction), in the order of the twin
// Philox.NormalPair (and its SIMD batches, PhiloxNormals.Fill), so every backend gives the same
// bits; no library log/sin/cos, whose last bits differ between platforms.
// Radius: u1 = k / 2^24, k = (x0 >> 8) + 1 in [1, 2^24]; k = 2^e * m with m in [sqrt(1/2), sqrt(2)],
// ln u1 = (e - 24) ln 2 + ln m, ln m = 2 atanh(s), s = (m - 1) / (m + 1), odd series to s^9.
// Angle: 2 pi u2 = (pi/2)(q + t), a = x1 >> 8, q = round(a / 2^22), t in [-1/2, 1/2]; sin and cos of
// (pi/2) t by Taylor polynomials to degree 9 and 10, turned by q quarter turns (swaps, sign flips).
__device__ __forceinline__ void philox_normal_pair(Philox4 b, float* z0, float* z1)
{
    int bits = __float_as_int((float)((int)(b.x0 >> 8) + 1));
    int e = (bits >> 23) - 127;
    float m = __int_as_float((bits & 0x7FFFFF) | 0x3F800000);
    if (m > 1.4142135381698608f) { m = __fmul_rn(m, 0.5f); e += 1; }
    float f = __fsub_rn(m, 1.0f);
    float s = __fdiv_rn(f, __fadd_rn(f, 2.0f));
    float s2 = __fmul_rn(s, s);
    float p = fmaf(s2, 0.1111111119389534f, 0.1428571492433548f);
    p = fmaf(s2, p, 0.20000000298023224f);
    p = fmaf(s2, p, 0.3333333432674408f);
    p = fmaf(s2, p, 1.0f);
    float log_u = fmaf((float)(e - 24), 0.6931471824645996f, __fmul_rn(__fmul_rn(2.0f, s), p));
    float square = __fmul_rn(-2.0f, log_u);
    float r = sqrtf(square > 0.0f ? square : 0.0f);

    int a = (int)(b.x1 >> 8);
    int q = (a + (1 << 21)) >> 22;
    float t = __fmul_rn((float)(a - (q << 22)), 1.0f / 4194304.0f);
    float t2 = __fmul_rn(t, t);
    float sp = fmaf(t2, 0.00016044118092395365f, -0.004681753925979137f);
    sp = fmaf(t2, sp, 0.07969262450933456f);
    sp = fmaf(t2, sp, -0.6459640860557556f);
    sp = fmaf(t2, sp, 1.5707963705062866f);
    float sine = __fmul_rn(t, sp);
    float cp = fmaf(t2, -2.520204179745633e-05f, 0.0009192602592520416f);
    cp = fmaf(t2, cp, -0.020863480865955353f);
    cp = fmaf(t2, cp, 0.25366950035095215f);
    cp = fmaf(t2, cp, -1.2337005138397217f);
    float cosine = fmaf(t2, cp, 1.0f);
    bool swap = (q & 1) != 0;
    float sin_turned = __int_as_float(__float_as_int(swap ? cosine : sine) ^ ((q & 2) << 30));
    float cos_turned = __int_as_float(__float_as_int(swap ? sine : cosine) ^ (((q + 1) & 2) << 30));
    *z0 = __fmul_rn(r, cos_turned);
    *z1 = __fmul_rn(r, sin_turned);
}
