// Global average pooling and 2x2/stride-2 max pooling.
// CPU twins (src/CudaSwa/Cpu/CpuPooling.cs), kernel by kernel: CpuPooling.GlobalAverageForward,
// GlobalAverageBackward, MaxForward, MaxBackward.
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, PointwiseTests, LargeCountTests.
#include "common.cuh"

// One warp per (n, c) plane.
extern "C" __global__ void global_avg_pool_forward(const float* __restrict__ x, float* __restrict__ y, i64 planes, int hw)
{
    i64 plane = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (plane >= planes) return;
    const float* p = x + plane * hw;
    float s = 0.0f;
    for (int j = lane; j < hw; j += 32) s += p[j];
    s = warp_sum(s);
    if (lane == 0) y[plane] = s / (float)hw;
}

extern "C" __global__ void global_avg_pool_backward(const float* __restrict__ dy, float* __restrict__ dx, i64 planes, int hw, int accumulate)
{
    GRID_STRIDE(i, planes * hw)
    {
        float g = dy[i / hw] / (float)hw;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

// One thread per output; the first maximum in row-major order wins ties (as the CPU twin).
extern "C" __global__ void max_pool_forward(const float* __restrict__ x, float* __restrict__ y, i64 planes, int h, int w)
{
    int ho = h / 2, wo = w / 2;
    GRID_STRIDE(o, planes * ho * wo)
    {
        i64 plane = o / (ho * wo);
        int rest = (int)(o % (ho * wo)), i = rest / wo, j = rest % wo;
        const float* q = x + plane * h * w + (2 * i) * w + 2 * j;
        float m = q[0];
        if (q[1] > m) m = q[1];
        if (q[w] > m) m = q[w];
        if (q[w + 1] > m) m = q[w + 1];
        y[o] = m;
    }
}

// Windows do not overlap, so each output thread owns its four inputs: no atomics needed.
extern "C" __global__ void max_pool_backward(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
                                             i64 planes, int h, int w, int accumulate)
{
    int ho = h / 2, wo = w / 2;
    GRID_STRIDE(o, planes * ho * wo)
    {
        i64 plane = o / (ho * wo);
        int rest = (int)(o % (ho * wo)), i = rest / wo, j = rest % wo;
        i64 at = plane * h * w + (2 * i) * w + 2 * j;
        i64 cand[4] = { at, at + 1, at + w, at + w + 1 };
        int best = 0;
        for (int k = 1; k < 4; ++k) if (x[cand[k]] > x[cand[best]]) best = k;
        float g = dy[o];
        for (int k = 0; k < 4; ++k)
        {
            float v = k == best ? g : 0.0f;
            dx[cand[k]] = accumulate ? dx[cand[k]] + v : v;
        }
    }
}
