// SWA-Gaussian (Maddox et al. 2019) over flat arenas: the collection pass that keeps the first and
// second moments and one deviation column, and the pass that writes one weight sample.
// CPU twins: CpuSwag.Collect and CpuSwag.Sample (src/CudaSwa/Cpu/CpuSwag.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), SwagOpTests (every backend), SwagTests.
#include "common.cuh"

// Stream tags of the two Philox draws of a sample (the twin: CpuSwag.DiagonalTag / LowRankTag).
#define SWAG_DIAGONAL_TAG 0x53574147u

// One pass per collection, after n models (alpha = 1/(n+1); alpha == 1 copies):
//   mean += alpha * (w - mean);  sq_mean += alpha * (w*w - sq_mean);  deviation = w - mean (the new mean)
// deviation may be null (diagonal-only SWAG). Rounding pinned so the CPU twin gives the same bits.
extern "C" __global__ void swag_collect(const float* __restrict__ w, float* __restrict__ mean, float* __restrict__ sq_mean,
                                        float* __restrict__ deviation, i64 n, float alpha)
{
    bool copy = alpha == 1.0f;
    GRID_STRIDE(i, n)
    {
        float wi = w[i];
        float w2 = __fmul_rn(wi, wi);
        float m = copy ? wi : fmaf(alpha, wi - mean[i], mean[i]);
        float s = copy ? w2 : fmaf(alpha, w2 - sq_mean[i], sq_mean[i]);
        mean[i] = m;
        sq_mean[i] = s;
        if (deviation) deviation[i] = wi - m;
    }
}

// One SWAG sample:
//   out = mean + diagonal_scale * sqrt(max(sq_mean - mean^2, variance_floor)) * z1
//              + low_rank_scale * sum_k deviations[k] * column_normals[k]
// z1 of elements 2j and 2j+1 are the two Box-Muller normals of the Philox block with counter
// (j, sample, SWAG_DIAGONAL_TAG) under the seed; one thread per pair. The column normals are drawn
// on the host (one per deviation column) and uploaded. deviations holds `columns` columns of n
// values each, column-major (column k starts at k*n); the sum runs k = 0, 1, ... with one fused
// multiply-add per column, like the CPU twin.
__device__ __forceinline__ float swag_value(const float* __restrict__ mean, const float* __restrict__ sq_mean,
                                            const float* __restrict__ deviations, const float* __restrict__ column_normals,
                                            int columns, i64 n, float diagonal_scale, float low_rank_scale, float variance_floor, i64 i, float z)
{
    float m = mean[i];
    float v = sq_mean[i] - __fmul_rn(m, m);
    v = v > variance_floor ? v : variance_floor;
    float low = 0.0f;
    for (int k = 0; k < columns; ++k) low = fmaf(deviations[(i64)k * n + i], column_normals[k], low);
    return __fadd_rn(m, __fadd_rn(__fmul_rn(diagonal_scale, __fmul_rn(sqrtf(v), z)), __fmul_rn(low_rank_scale, low)));
}

extern "C" __global__ void swag_sample(const float* __restrict__ mean, const float* __restrict__ sq_mean,
                                       const float* __restrict__ deviations, const float* __restrict__ column_normals,
                                       int columns, i64 n, float diagonal_scale, float low_rank_scale, float variance_floor,
                                       u32 seed_lo, u32 seed_hi, u32 sample, float* __restrict__ out)
{
    GRID_STRIDE(j, (n + 1) / 2)
    {
        float z0, z1;
        philox_normal_pair(philox4x32_10((u32)j, (u32)(j >> 32), sample, SWAG_DIAGONAL_TAG, seed_lo, seed_hi), &z0, &z1);
        i64 i = 2 * j;
        out[i] = swag_value(mean, sq_mean, deviations, column_normals, columns, n, diagonal_scale, low_rank_scale, variance_floor, i, z0);
        if (i + 1 < n) out[i + 1] = swag_value(mean, sq_mean, deviations, column_normals, columns, n, diagonal_scale, low_rank_scale, variance_floor, i + 1, z1);
    }
}
