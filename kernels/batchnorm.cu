// BN recompute support: Chan's parallel merge of one batch's per-channel statistics into the
// running (mean, M2) pair.
// CPU twin: CpuBatchNorm.MergeStatistics (src/CudaSwa/Cpu/CpuBatchNorm.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, BatchNormTests,
// BatchNormRecomputeTests, CpuVsCudaTests.
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
