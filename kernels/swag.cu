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
// z1[i] is the Philox normal of counter (i, sample, SWAG_DIAGONAL_TAG) under the seed; the
// column normals are drawn on the host (one per deviation column) and uploaded. deviations holds
// `columns` columns of n values each, column-major (column k starts at k*n).
extern "C" __global__ void swag_sample(const float* __restrict__ mean, const float* __restrict__ sq_mean,
                                       const float* __restrict__ deviations, const float* __restrict__ column_normals,
                                       int columns, i64 n, float diagonal_scale, float low_rank_scale, float variance_floor,
                                       u32 seed_lo, u32 seed_hi, u32 sample, float* __restrict__ out)
{
    GRID_STRIDE(i, n)
    {
        float m = mean[i];
        float v = sq_mean[i] - __fmul_rn(m, m);
        v = v > variance_floor ? v : variance_floor;
        float z = philox_normal(philox4x32_10((u32)i, (u32)(i >> 32), sample, SWAG_DIAGONAL_TAG, seed_lo, seed_hi));
        float low = 0.0f;
        for (int k = 0; k < columns; ++k) low = fmaf(deviations[(i64)k * n + i], column_normals[k], low);
        out[i] = __fadd_rn(m, __fadd_rn(__fmul_rn(diagonal_scale, __fmul_rn(sqrtf(v), z)), __fmul_rn(low_rank_scale, low)));
    }
}
