// Batch-norm helpers around cuDNN's BN: Chan's parallel merge of one batch's per-channel
// statistics into the running (mean, M2) pair (BN recompute), and folding an inference-mode BN
// into the convolution before it (evaluation).
// CPU twins: CpuBatchNorm.MergeStatistics and CpuBatchNorm.Fold (src/CudaSwa/Cpu/CpuBatchNorm.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, BatchNormTests,
// BatchNormRecomputeTests, CpuVsCudaTests, FusionTests.
#include "common.cuh"

// The batch's biased variance is read back from cuDNN's saved inverse std: var = 1/inv^2 - eps.
extern "C" __global__ void bn_merge_statistics(const float* __restrict__ batch_mean, const float* __restrict__ batch_inv_std,
                                               float* __restrict__ acc_mean, float* __restrict__ acc_m2, int channels,
                                               double eps, double batch_count, double previous_count)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double inv = batch_inv_std[c];
    double var = 1.0 / (inv * inv) - eps;
    if (var < 0.0) var = 0.0;
    double m2b = var * batch_count;
    if (previous_count == 0.0)
    {
        acc_mean[c] = batch_mean[c];
        acc_m2[c] = (float)m2b;
        return;
    }
    double total = previous_count + batch_count;
    double delta = (double)batch_mean[c] - (double)acc_mean[c];
    acc_mean[c] = (float)((double)acc_mean[c] + delta * batch_count / total);
    acc_m2[c] = (float)((double)acc_m2[c] + m2b + delta * delta * previous_count * batch_count / total);
}

// Folding: with s = gamma/sqrt(var + eps) in double, rounded once, folded_weight = weight * s[o] for
// filter o, folded_bias[o] = t + bias[o] * s with t = beta[o] - (mean[o]*gamma[o]) * inv (t alone
// when bias is null). mean*gamma is a float product and t's other steps double, in exactly the CPU
// twin's order; every step is pinned (__dmul_rn, __dsub_rn, __fmul_rn, __fadd_rn) so no FMA
// contraction changes a bit.
extern "C" __global__ void batchnorm_fold(const float* __restrict__ weight, const float* __restrict__ bias, const float* __restrict__ gamma, const float* __restrict__ beta,
                                          const float* __restrict__ mean, const float* __restrict__ var, float* __restrict__ folded_weight,
                                          float* __restrict__ folded_bias, i64 n, i64 per_filter, double eps)
{
    GRID_STRIDE(i, n)
    {
        i64 o = i / per_filter;
        double inv = 1.0 / __dsqrt_rn(__dadd_rn((double)var[o], eps));
        float scale = (float)__dmul_rn((double)gamma[o], inv);
        folded_weight[i] = __fmul_rn(weight[i], scale);
        if (i % per_filter == 0)
        {
            float shift = (float)__dsub_rn((double)beta[o], __dmul_rn((double)__fmul_rn(mean[o], gamma[o]), inv));
            folded_bias[o] = bias ? __fadd_rn(shift, __fmul_rn(bias[o], scale)) : shift;
        }
    }
}
