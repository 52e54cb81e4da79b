// Kernels that break the rules on purpose, built into the emulation next to kernels/*.cu so the
// tests can show that each check of the emulation and the stand-in driver fires (a check that
// cannot fail proves nothing). Never part of the engine.
typedef unsigned int u32;

// Lanes 0-15 wait in a shuffle for lanes 16-31, which wait at __syncthreads for them: a deadlock.
extern "C" __global__ void selftest_deadlock(float* out)
{
    float v = (float)threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    else __syncthreads();
    out[threadIdx.x] = v;
}

// Lanes 16-31 return before the shuffle; lanes 0-15 then read their values.
extern "C" __global__ void selftest_shuffle_from_returned_lane(float* out)
{
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 16);
}

// One element past the end of a buffer of n floats.
extern "C" __global__ void selftest_write_past_end(float* p, int n)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) p[n] = 1.0f;
}

// The same product and sum written plainly (the compiler may fuse it) and with pinned rounding.
extern "C" __global__ void selftest_mul_add(const float* a, const float* b, const float* c, float* plain, float* pinned, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    {
        plain[i] = a[i] * b[i] + c[i];
        pinned[i] = __fadd_rn(__fmul_rn(a[i], b[i]), c[i]);
    }
}

// A block-wide tree sum in shared memory: needs its barriers.
extern "C" __global__ void selftest_block_sum(const float* x, float* out)
{
    __shared__ float s[256];
    u32 t = threadIdx.x;
    s[t] = x[blockIdx.x * 256 + t];
    __syncthreads();
    for (u32 w = 128; w > 0; w >>= 1)
    {
        if (t < w) s[t] += s[t + w];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// Every warp primitive the emulation offers, per lane, for comparison with CUDA's definitions:
// out[lane*8 + 0..7] = ballot(lane%3==0), any(lane==5), all(lane<32), shfl(v, lane+1), shfl_down(v, 1),
// shfl_up(v, 3), shfl_xor(v, 8, width 8), shfl_down(v, 5, width 16); v = 100 + lane.
extern "C" __global__ void selftest_warp_primitives(int* out)
{
    int lane = threadIdx.x & 31;
    int v = 100 + lane;
    int* o = out + (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    o[0] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
    o[1] = __any_sync(0xffffffffu, lane == 5);
    o[2] = __all_sync(0xffffffffu, lane < 32);
    o[3] = __shfl_sync(0xffffffffu, v, lane + 1);
    o[4] = __shfl_down_sync(0xffffffffu, v, 1);
    o[5] = __shfl_up_sync(0xffffffffu, v, 3);
    o[6] = __shfl_xor_sync(0xffffffffu, v, 8, 8);
    o[7] = __shfl_down_sync(0xffffffffu, v, 5, 16);
}
