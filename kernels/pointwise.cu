// Elementwise kernels.
// CPU twins (src/CudaSwa/Cpu/CpuPointwise.cs), kernel by kernel: CpuPointwise.ReluForward, ReluBackward,
// Add, AddRelu, AddChannelBiasRelu, PointOnLine, Accumulate, AddRowBias and ColumnSumAccumulate (the linear layer's bias passes around cuBLAS),
// DropoutForward, DropoutBackward.
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, PointwiseTests, LargeCountTests,
// LengthSweepTests, SimdWidthTests (the CPU twins at every vector width), FusionTests, LinearAndLossTests (add_row_bias, column_sum_accumulate),
// LandscapeTests (point_on_line).
#include "common.cuh"

// max(v, 0) as IEEE 754-2019 maximum, like the CPU twin and PyTorch: NaN stays NaN (a diverged
// activation must not turn into a harmless zero), -0 becomes +0.
__device__ __forceinline__ float relu_value(float v) { return (v > 0.0f || v != v) ? v : 0.0f; }

extern "C" __global__ void relu_forward(const float* __restrict__ x, float* __restrict__ y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = relu_value(x[i]);
}

// dx = dy where y > 0 (the output decides, so the input need not be kept).
extern "C" __global__ void relu_backward(const float* __restrict__ y, const float* __restrict__ dy, float* __restrict__ dx, i64 n, int accumulate)
{
    GRID_STRIDE(i, n)
    {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

extern "C" __global__ void add(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

// y = max(a + b, 0): the residual join fused with its ReLU (CPU twin: CpuPointwise.AddRelu).
// y = origin + s * direction: one weight vector on a line through the weights (the loss-landscape
// points). Product rounded first, then the sum (no contraction), like the CPU twin; s = 0 gives origin.
extern "C" __global__ void point_on_line(const float* __restrict__ origin, const float* __restrict__ direction, float s,
                                         float* __restrict__ y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = __fadd_rn(origin[i], __fmul_rn(s, direction[i]));
}

extern "C" __global__ void add_relu(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = relu_value(a[i] + b[i]);
}

// y = max(y + bias[c], 0) in place over NCHW, c = (i / hw) % channels: a folded convolution's bias
// and its ReLU (CPU twin: CpuPointwise.AddChannelBiasRelu).
extern "C" __global__ void add_channel_bias_relu(float* __restrict__ y, const float* __restrict__ bias, i64 n, int channels, int hw)
{
    GRID_STRIDE(i, n) y[i] = relu_value(y[i] + bias[(i / hw) % channels]);
}

// dst = src, or dst += src.
extern "C" __global__ void accumulate(const float* __restrict__ src, float* __restrict__ dst, i64 n, int accumulate)
{
    GRID_STRIDE(i, n) dst[i] = accumulate ? dst[i] + src[i] : src[i];
}

// y[r, j] += b[j] for a (rows, cols) matrix: the bias of a linear layer.
extern "C" __global__ void add_row_bias(float* __restrict__ y, const float* __restrict__ b, i64 rows, int cols)
{
    GRID_STRIDE(i, rows * cols) y[i] += b[i % cols];
}

// db[j] += sum over rows of dy[r, j] (linear-layer bias gradient), one thread per column, double sums.
extern "C" __global__ void column_sum_accumulate(const float* __restrict__ dy, float* __restrict__ db, int rows, int cols)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double s = 0.0;
    for (int r = 0; r < rows; ++r) s += dy[(i64)r * cols + j];
    db[j] += (float)s;
}

// Inverted dropout keyed by Philox(counter = (i/4, i>>34, stream), key = seed): element i is kept when
// the (i mod 4)-th word's uniform is >= p. One thread per group of four elements (one Philox call).
extern "C" __global__ void dropout_forward(const float* __restrict__ x, float* __restrict__ y, i64 n, float p,
                                           u32 seed_lo, u32 seed_hi, u32 stream_lo, u32 stream_hi)
{
    float scale = 1.0f / (1.0f - p);
    GRID_STRIDE(g, (n + 3) / 4)
    {
        i64 base = g * 4;
        Philox4 r = philox4x32_10((u32)g, (u32)(base >> 34), stream_lo, stream_hi, seed_lo, seed_hi);
        for (int k = 0; k < 4 && base + k < n; ++k)
            y[base + k] = philox_uniform(philox_word(r, k)) >= p ? x[base + k] * scale : 0.0f;
    }
}

extern "C" __global__ void dropout_backward(const float* __restrict__ dy, float* __restrict__ dx, i64 n, float p,
                                            u32 seed_lo, u32 seed_hi, u32 stream_lo, u32 stream_hi, int accumulate)
{
    float scale = 1.0f / (1.0f - p);
    GRID_STRIDE(g, (n + 3) / 4)
    {
        i64 base = g * 4;
        Philox4 r = philox4x32_10((u32)g, (u32)(base >> 34), stream_lo, stream_hi, seed_lo, seed_hi);
        for (int k = 0; k < 4 && base + k < n; ++k)
        {
            float v = philox_uniform(philox_word(r, k)) >= p ? dy[base + k] * scale : 0.0f;
            dx[base + k] = accumulate ? dx[base + k] + v : v;
        }
    }
}
