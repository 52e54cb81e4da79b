// Softmax cross-entropy with top-1 accuracy, and softmax. CPU twin: src/CudaSwa/Cpu/CpuLoss.cs.
#include "common.cuh"

// One warp per row of logits (k classes). Adds the row's loss to stats[0] and 1 to stats[1] when
// the first maximum is the label; writes dlogits = (softmax - onehot)/n when dlogits is not null.
extern "C" __global__ void softmax_cross_entropy(const float* __restrict__ z, const int* __restrict__ labels, float* __restrict__ dz,
                                                 float* __restrict__ stats, int n, int k)
{
    int row = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    const float* r = z + (i64)row * k;
    // Maximum and its first index.
    float best = -3.402823466e38f;
    int arg = k;
    for (int j = lane; j < k; j += 32)
        if (r[j] > best) { best = r[j]; arg = j; }
    for (int o = 16; o > 0; o >>= 1)
    {
        float ob = __shfl_xor_sync(0xffffffffu, best, o);
        int oa = __shfl_xor_sync(0xffffffffu, arg, o);
        if (ob > best || (ob == best && oa < arg)) { best = ob; arg = oa; }
    }
    float s = 0.0f;
    for (int j = lane; j < k; j += 32) s += expf(r[j] - best);
    s = warp_sum(s);
    float log_sum = logf(s) + best;
    int label = labels[row];
    if (lane == 0)
    {
        atomicAdd(stats, log_sum - r[label]);
        if (arg == label) atomicAdd(stats + 1, 1.0f);
    }
    if (dz != 0)
    {
        float inv_n = 1.0f / (float)n;
        for (int j = lane; j < k; j += 32)
            dz[(i64)row * k + j] = (expf(r[j] - log_sum) - (j == label ? 1.0f : 0.0f)) * inv_n;
    }
}

extern "C" __global__ void softmax(const float* __restrict__ z, float* __restrict__ p, int n, int k)
{
    int row = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    const float* r = z + (i64)row * k;
    float best = -3.402823466e38f;
    for (int j = lane; j < k; j += 32) best = fmaxf(best, r[j]);
    for (int o = 16; o > 0; o >>= 1) best = fmaxf(best, __shfl_xor_sync(0xffffffffu, best, o));
    float s = 0.0f;
    for (int j = lane; j < k; j += 32) s += expf(r[j] - best);
    s = warp_sum(s);
    for (int j = lane; j < k; j += 32) p[(i64)row * k + j] = expf(r[j] - best) / s;
}
