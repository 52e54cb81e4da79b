// Softmax cross-entropy with top-1 accuracy, and softmax.
// CPU twins: CpuLoss.SoftmaxCrossEntropy (softmax_cross_entropy then add_row_stats) and CpuLoss.Softmax
// (src/CudaSwa/Cpu/CpuLoss.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, LinearAndLossTests, CpuVsCudaTests.
#include "common.cuh"

// One warp per row of logits (k classes). Writes the row's loss to row_loss[row] and 1 or 0 to
// row_correct[row] (the first maximum is the label or not); writes dlogits = (softmax - onehot)/n
// when dlogits is not null. add_row_stats then sums the rows in a fixed order: no float atomics,
// so the reported loss is the same bits on every run.
extern "C" __global__ void softmax_cross_entropy(const float* __restrict__ z, const int* __restrict__ labels, float* __restrict__ dz,
                                                 float* __restrict__ row_loss, float* __restrict__ row_correct, int n, int k)
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
        row_loss[row] = log_sum - r[label];
        row_correct[row] = arg == label ? 1.0f : 0.0f;
    }
    if (dz != 0)
    {
        float inv_n = 1.0f / (float)n;
        for (int j = lane; j < k; j += 32)
            dz[(i64)row * k + j] = (expf(r[j] - log_sum) - (j == label ? 1.0f : 0.0f)) * inv_n;
    }
}

// One block of 256 threads: stats[0] += sum of row_loss, stats[1] += sum of row_correct, in double,
// each thread striding over the rows in order, then a fixed tree reduction.
extern "C" __global__ void add_row_stats(const float* __restrict__ row_loss, const float* __restrict__ row_correct, int n, float* __restrict__ stats)
{
    __shared__ double loss[256];
    __shared__ double correct[256];
    int t = threadIdx.x;
    double l = 0.0, c = 0.0;
    for (int i = t; i < n; i += 256) { l += row_loss[i]; c += row_correct[i]; }
    block_sum2(loss, correct, l, c);
    if (t == 0)
    {
        stats[0] += (float)loss[0];      // as the CPU twin: the batch's double sum, rounded, added in float
        stats[1] += (float)correct[0];
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
