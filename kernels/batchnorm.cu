// Batch-norm helpers around cuDNN's BN: Chan's parallel merge of one batch's per-channel
// statistics into the running (mean, M2) pair (BN recompute), folding an inference-mode BN
// into the convolution before it (evaluation), and the per-shard halves of BN over several
// ranks (synchronised BN): a shard's moments, their merge over the ranks, its backward sums, and
// the input gradient from the whole batch's sums.
// CPU twins: CpuBatchNorm.MergeStatistics, Fold, ShardMoments, BackwardReduce, BackwardElementwise
// and MergeShards (src/CudaSwa/Cpu/CpuBatchNorm.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, BatchNormTests,
// BatchNormRecomputeTests, CpuVsCudaTests, FusionTests, ShardedBatchNormTests, SyncBatchNormTests.
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

// bn_moments and bn_backward_reduce are launched with blocks of exactly 256 threads (CudaBackend's
// Block), which their shared arrays (block_sum2, common.cuh) and strides assume.

// One block of 256 threads per channel (grid = channels). Moments about k = the channel's first
// value (d = x - k in float, as the twin), summed in double: mean = k + S1/m, M2 = S2 - S1 * S1/m.
extern "C" __global__ void bn_moments(const float* __restrict__ x, float* __restrict__ mean, float* __restrict__ m2,
                                      int n, int channels, int hw)
{
    __shared__ double s1[256];
    __shared__ double s2[256];
    int c = blockIdx.x;
    float k = x[(i64)c * hw];
    i64 m = (i64)n * hw;
    double a = 0.0, b = 0.0;
    for (i64 j = threadIdx.x; j < m; j += 256)
    {
        i64 image = j / hw, p = j - image * hw;
        float d = __fsub_rn(x[(image * channels + c) * hw + p], k);
        a += d;
        b += (double)d * d;
    }
    block_sum2(s1, s2, a, b);
    if (threadIdx.x == 0)
    {
        double shifted = s1[0] / (double)m;
        mean[c] = (float)((double)k + shifted);
        double sq = s2[0] - s1[0] * shifted;
        m2[c] = (float)(sq > 0.0 ? sq : 0.0);
    }
}

// One block of 256 threads per channel. g = dy (masked where the fused ReLU's output y <= 0 when y
// is not null); sum_dy = Σ g, sum_dy_xhat = inv_std * (Σ g*x - mean * Σ g), both in double,
// written and added (in float) to d_beta and d_gamma.
extern "C" __global__ void bn_backward_reduce(const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ dy,
                                              const float* __restrict__ save_mean, const float* __restrict__ save_inv_std,
                                              float* __restrict__ sum_dy, float* __restrict__ sum_dy_xhat,
                                              float* __restrict__ d_gamma, float* __restrict__ d_beta, int n, int channels, int hw)
{
    __shared__ double s1[256];
    __shared__ double s2[256];
    int c = blockIdx.x;
    i64 m = (i64)n * hw;
    double a = 0.0, b = 0.0;
    for (i64 j = threadIdx.x; j < m; j += 256)
    {
        i64 image = j / hw, p = j - image * hw;
        i64 i = (image * channels + c) * hw + p;
        float g = y && !(y[i] > 0.0f) ? 0.0f : dy[i];
        a += g;
        b += (double)g * x[i];
    }
    block_sum2(s1, s2, a, b);
    if (threadIdx.x == 0)
    {
        double sdy = s1[0];
        double sdx = (double)save_inv_std[c] * (s2[0] - (double)save_mean[c] * sdy);
        sum_dy[c] = (float)sdy;
        sum_dy_xhat[c] = (float)sdx;
        d_beta[c] = __fadd_rn(d_beta[c], (float)sdy);
        d_gamma[c] = __fadd_rn(d_gamma[c], (float)sdx);
    }
}

// dx = k1*g + k2*x + k3 per channel with k1 = gamma*inv, k2 = -gamma*inv*inv*sum_dy_xhat/count,
// k3 = -gamma*inv*sum_dy/count - k2*mean: the constants in double, rounded once, and the float
// expression in the twin's order, every step pinned, so the result is the twin's bit for bit.
extern "C" __global__ void bn_backward_elementwise(const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ dy,
                                                   const float* __restrict__ gamma, const float* __restrict__ save_mean,
                                                   const float* __restrict__ save_inv_std, const float* __restrict__ sum_dy,
                                                   const float* __restrict__ sum_dy_xhat, double count, float* __restrict__ dx, i64 total,
                                                   int channels, int hw, int accumulate)
{
    GRID_STRIDE(i, total)
    {
        int c = (int)((i / hw) % channels);
        double g = gamma[c], inv = save_inv_std[c];
        double gi = __dmul_rn(-g, inv);
        double k2d = __ddiv_rn(__dmul_rn(__dmul_rn(gi, inv), (double)sum_dy_xhat[c]), count);
        double k3d = __dsub_rn(__ddiv_rn(__dmul_rn(gi, (double)sum_dy[c]), count), __dmul_rn(k2d, (double)save_mean[c]));
        float k1 = (float)__dmul_rn(g, inv), k2 = (float)k2d, k3 = (float)k3d;
        float grad = y && !(y[i] > 0.0f) ? 0.0f : dy[i];
        float v = __fadd_rn(__fadd_rn(__fmul_rn(k1, grad), __fmul_rn(k2, x[i])), k3);
        dx[i] = accumulate ? __fadd_rn(dx[i], v) : v;
    }
}

// One thread per channel: the ranks' rows of shards (count, C means, C M2s) merged with Chan's
// formula in rank order (rows with count 0 skipped), in double, then the batch's statistics and
// the running update as cuDNN's training BN stores them. Every step pinned, in the twin's order.
extern "C" __global__ void bn_merge_shards(const float* __restrict__ shards, int ranks, int channels, double factor, double eps,
                                           float* __restrict__ running_mean, float* __restrict__ running_var, float* __restrict__ save_mean,
                                           float* __restrict__ save_inv_std, float* __restrict__ batch_var)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    i64 row = 1 + 2 * (i64)channels;
    double total = 0.0, mean = 0.0, m2 = 0.0;
    for (int r = 0; r < ranks; r++)
    {
        double count = shards[r * row];
        if (count == 0.0) continue;
        double shard_mean = shards[r * row + 1 + c], shard_m2 = shards[r * row + 1 + channels + c];
        if (total == 0.0) { mean = shard_mean; m2 = shard_m2; }
        else
        {
            double sum = __dadd_rn(total, count), delta = __dsub_rn(shard_mean, mean);
            mean = __dadd_rn(mean, __ddiv_rn(__dmul_rn(delta, count), sum));
            m2 = __dadd_rn(__dadd_rn(m2, shard_m2), __ddiv_rn(__dmul_rn(__dmul_rn(__dmul_rn(delta, delta), total), count), sum));
        }
        total = __dadd_rn(total, count);
    }
    double var_biased = 0.0;
    if (total > 0.0) { var_biased = __ddiv_rn(m2, total); if (var_biased < 0.0) var_biased = 0.0; }
    double var_unbiased = total > 1.0 ? __ddiv_rn(__dmul_rn(var_biased, total), __dsub_rn(total, 1.0)) : var_biased;
    double keep = __dsub_rn(1.0, factor);
    running_mean[c] = (float)__dadd_rn(__dmul_rn(keep, (double)running_mean[c]), __dmul_rn(factor, mean));
    running_var[c] = (float)__dadd_rn(__dmul_rn(keep, (double)running_var[c]), __dmul_rn(factor, var_unbiased));
    save_mean[c] = (float)mean;
    save_inv_std[c] = (float)__ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(var_biased, eps)));
    batch_var[c] = (float)var_biased;
}
