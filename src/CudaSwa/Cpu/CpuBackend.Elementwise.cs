using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    private protected override void ReluForwardCore(Tensor x, Tensor y) =>
        Elementwise.ParallelMap(CpuTensor.Ptr(x), CpuTensor.Ptr(y), x.Length, new Relu());

    private protected override void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate) =>
        Elementwise.ParallelMapInto(CpuTensor.Ptr(y), CpuTensor.Ptr(dy), CpuTensor.Ptr(dx), y.Length, new ReluGradient(), accumulate);

    private protected override void AddCore(Tensor a, Tensor b, Tensor y) =>
        Elementwise.ParallelMap(CpuTensor.Ptr(a), CpuTensor.Ptr(b), CpuTensor.Ptr(y), a.Length, new Sum());

    private protected override void PointOnLineCore(Tensor origin, Tensor direction, float s, Tensor y) =>
        Elementwise.ParallelMap(CpuTensor.Ptr(origin), CpuTensor.Ptr(direction), CpuTensor.Ptr(y), origin.Length, new Along(s));

    /// <summary>y = max(a + b, 0): the residual join fused with its ReLU.</summary>
    private protected override void AddReluCore(Tensor a, Tensor b, Tensor y) =>
        Elementwise.ParallelMap(CpuTensor.Ptr(a), CpuTensor.Ptr(b), CpuTensor.Ptr(y), a.Length, new SumRelu());

    /// <summary>
    /// The backward pass of y = max(a + b, 0): g = dy where y &gt; 0 into both inputs. The input that
    /// is overwritten gets g first, the other adds it from there (two passes instead of three);
    /// when both accumulate, each adds g computed on the fly. dy is only read.
    /// </summary>
    private protected override void AddReluBackwardCore(Tensor y, Tensor dy, Tensor da, bool accumulateA, Tensor db, bool accumulateB)
    {
        float* py = CpuTensor.Ptr(y), pdy = CpuTensor.Ptr(dy), pa = CpuTensor.Ptr(da), pb = CpuTensor.Ptr(db);
        long n = y.Length;
        if (!accumulateB || !accumulateA)
        {
            float* first = !accumulateB ? pb : pa, second = !accumulateB ? pa : pb;
            bool accumulateSecond = !accumulateB ? accumulateA : accumulateB;
            Elementwise.ParallelMapInto(py, pdy, first, n, new ReluGradient(), accumulate: false);
            Elementwise.ParallelMapInto(first, second, n, new Identity(), accumulateSecond);
            return;
        }
        Elementwise.ParallelMapInto(py, pdy, pa, n, new ReluGradient(), accumulate: true);
        Elementwise.ParallelMapInto(py, pdy, pb, n, new ReluGradient(), accumulate: true);
    }

    private protected override void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate) =>
        Elementwise.ParallelMapInto(CpuTensor.Ptr(source), CpuTensor.Ptr(destination), source.Length, new Identity(), accumulate);

    private protected override void DropoutForwardCore(Tensor x, Tensor y, float p, ulong seed, ulong stream)
    {
        float* xs = CpuTensor.Ptr(x), ys = CpuTensor.Ptr(y);
        float scale = 1f / (1f - p);
        for (long i = 0; i < x.Length; i++)
            ys[i] = Philox.DropoutKeep(seed, stream, i, p) ? xs[i] * scale : 0f;
    }

    private protected override void DropoutBackwardCore(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate)
    {
        float* dys = CpuTensor.Ptr(dy), dxs = CpuTensor.Ptr(dx);
        float scale = 1f / (1f - p);
        for (long i = 0; i < dy.Length; i++)
        {
            float g = Philox.DropoutKeep(seed, stream, i, p) ? dys[i] * scale : 0f;
            dxs[i] = accumulate ? dxs[i] + g : g;
        }
    }

    // ---------------------------------------------------------------- pointwise
    // Elementwise ops on the CPU: each op's arithmetic is an operator struct (scalar, Vector256 and
    // Vector512 bodies of the same operations), run by the one driver (<see cref="Elementwise"/>), split
    // across workers for large tensors. CUDA twins: kernels/pointwise.cu.

    /// <summary>max(x, 0), NaN propagating (IEEE maximum; the relu_forward kernel does the same).</summary>
    internal readonly struct Relu : IUnaryOperator
    {
        public float Invoke(float x) => MathF.Max(x, 0f);
        public Vector256<float> Invoke(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);
        public Vector512<float> Invoke(Vector512<float> x) => Vector512.Max(x, Vector512<float>.Zero);
    }

    /// <summary>dy where the ReLU's output y is positive, else 0 (the output decides: the input need not be kept).</summary>
    internal readonly struct ReluGradient : IBinaryOperator
    {
        public float Invoke(float y, float dy) => y > 0f ? dy : 0f;
        public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => Vector256.ConditionalSelect(Vector256.GreaterThan(y, Vector256<float>.Zero), dy, Vector256<float>.Zero);
        public Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy) => Vector512.ConditionalSelect(Vector512.GreaterThan(y, Vector512<float>.Zero), dy, Vector512<float>.Zero);
    }

    /// <summary>a + b.</summary>
    /// <summary>a + s·d, the product rounded first (as point_on_line pins it).</summary>
    internal readonly struct Along(float s) : IBinaryOperator
    {
        public float Invoke(float a, float d) => a + s * d;
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> d) => a + Vector256.Create(s) * d;
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> d) => a + Vector512.Create(s) * d;
    }

    internal readonly struct Sum : IBinaryOperator
    {
        public float Invoke(float a, float b) => a + b;
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a + b;
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => a + b;
    }

    /// <summary>max(a + b, 0).</summary>
    internal readonly struct SumRelu : IBinaryOperator
    {
        public float Invoke(float a, float b) => new Relu().Invoke(a + b);
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => new Relu().Invoke(a + b);
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => new Relu().Invoke(a + b);
    }

    /// <summary>x (a copy; with accumulation, dst += x).</summary>
    internal readonly struct Identity : IUnaryOperator
    {
        public float Invoke(float x) => x;
        public Vector256<float> Invoke(Vector256<float> x) => x;
        public Vector512<float> Invoke(Vector512<float> x) => x;
    }

    /// <summary>x * s.</summary>
    internal readonly struct Scale(float s) : IUnaryOperator
    {
        public float Invoke(float x) => x * s;
        public Vector256<float> Invoke(Vector256<float> x) => x * Vector256.Create(s);
        public Vector512<float> Invoke(Vector512<float> x) => x * Vector512.Create(s);
    }

    /// <summary>max(x * scale + shift, 0): BN's apply fused with the ReLU after it.</summary>
    internal readonly struct ScaleShiftRelu(float scale, float shift) : IUnaryOperator
    {
        private readonly ScaleShift _inner = new(scale, shift);
        public float Invoke(float x) => new Relu().Invoke(_inner.Invoke(x));
        public Vector256<float> Invoke(Vector256<float> x) => new Relu().Invoke(_inner.Invoke(x));
        public Vector512<float> Invoke(Vector512<float> x) => new Relu().Invoke(_inner.Invoke(x));
    }

    /// <summary>x * scale + shift, a multiply then an add (not fused), like cuDNN's BN apply it twins.</summary>
    internal readonly struct ScaleShift(float scale, float shift) : IUnaryOperator
    {
        public float Invoke(float x) => x * scale + shift;
        public Vector256<float> Invoke(Vector256<float> x) => x * Vector256.Create(scale) + Vector256.Create(shift);
        public Vector512<float> Invoke(Vector512<float> x) => x * Vector512.Create(scale) + Vector512.Create(shift);
    }

    /// <summary>y[r, j] += b[j] for a (rows, cols) matrix: the bias of a linear layer (twin of the add_row_bias kernel).</summary>
    internal static void AddRowBias(float* y, float* b, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = new Span<float>(y + (long)r * cols, cols);
            System.Numerics.Tensors.TensorPrimitives.Add(row, new ReadOnlySpan<float>(b, cols), row);
        }
    }

    /// <summary>
    /// db[j] += sum over rows of dy[r, j], each column summed in double in row order and rounded
    /// once (twin of the column_sum_accumulate kernel: the same bits).
    /// </summary>
    internal static void ColumnSumAccumulate(float* dy, float* db, int rows, int cols)
    {
        for (int j = 0; j < cols; j++)
        {
            double sum = 0;
            for (int r = 0; r < rows; r++) sum += dy[(long)r * cols + j];
            db[j] += (float)sum;
        }
    }
}
