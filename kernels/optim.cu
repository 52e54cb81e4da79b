// The fused passes over flat arenas: the running-average update of SWA/EMA (multi-tensor, one
// launch for any number of buffers) and the SGD step.
// CPU twins: CpuOptim.AverageUpdate and CpuOptim.SgdStep (src/CudaSwa/Cpu/CpuOptim.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, OptimTests.
#include "common.cuh"

// One block per chunk of one (average, current) pair, apex multi_tensor_apply style. The tables
// (pointers, lengths, and per chunk its pair and first element) live in device memory and are
// uploaded once when the averaging plan is prepared; per update only alpha changes, so an update
// is one launch with no host synchronisation.
//   average += alpha * (current - average)      (alpha = 1/(n+1): SWA; 1 - decay: EMA)
//   alpha == 1 copies exactly, whatever average held before (NaN included).
extern "C" __global__ void average_update(const u64* __restrict__ averages, const u64* __restrict__ currents,
                                          const i64* __restrict__ lengths, const int* __restrict__ chunk_pair,
                                          const i64* __restrict__ chunk_start, int chunk_size, float alpha)
{
    int pair = chunk_pair[blockIdx.x];
    i64 start = chunk_start[blockIdx.x];
    i64 end = start + chunk_size;
    if (end > lengths[pair]) end = lengths[pair];
    float* a = (float*)averages[pair];
    const float* c = (const float*)currents[pair];
    bool copy = alpha == 1.0f;
    // f4 path when both buffers and the chunk start are 16-byte aligned (always, for arenas).
    bool vec = ((averages[pair] | currents[pair]) & 15) == 0 && (start & 3) == 0;
    i64 i = start + (i64)threadIdx.x * (vec ? 4 : 1);
    if (vec)
    {
        for (; i + 3 < end; i += (i64)blockDim.x * 4)
        {
            f4 av = *(f4*)(a + i);
            f4 cv = *(const f4*)(c + i);
            if (copy) av = cv;
            else
            {
                av.x = fmaf(alpha, cv.x - av.x, av.x);
                av.y = fmaf(alpha, cv.y - av.y, av.y);
                av.z = fmaf(alpha, cv.z - av.z, av.z);
                av.w = fmaf(alpha, cv.w - av.w, av.w);
            }
            *(f4*)(a + i) = av;
        }
        // Scalar tail (at most 3 elements, handled by the thread whose f4 would cross the end).
        for (; i < end; ++i) a[i] = copy ? c[i] : fmaf(alpha, c[i] - a[i], a[i]);
        return;
    }
    for (; i < end; i += blockDim.x) a[i] = copy ? c[i] : fmaf(alpha, c[i] - a[i], a[i]);
}

// PyTorch-semantics SGD over a flat arena: g += wd*w; v = m*v + g; w -= lr * (nesterov ? g + m*v : v).
// Separate multiply/add (no contraction), like the CPU twin.
extern "C" __global__ void sgd_step(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ v, i64 n,
                                    float lr, float momentum, float wd, int nesterov)
{
    GRID_STRIDE(i, n)
    {
        float wi = w[i];
        float gi = __fadd_rn(g[i], __fmul_rn(wd, wi));
        float vi = __fadd_rn(__fmul_rn(momentum, v[i]), gi);
        v[i] = vi;
        float step = nesterov ? __fadd_rn(gi, __fmul_rn(momentum, vi)) : vi;
        w[i] = __fadd_rn(wi, -__fmul_rn(lr, step));
    }
}
