using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>
/// The CPU's convolutions: runs each pass with the algorithm <see cref="ConvolutionChoice"/> picks for
/// the shape — <see cref="WinogradConvolution"/> (3x3 stride 1), <see cref="DirectConvolution"/>
/// (3x3 and 1x1, stride 1 or 2), or im2col + GEMM (every shape), which lives here, one image at a
/// time per worker: forward y_n[K, PQ] = W[K, CRS] * col(x_n)[CRS, PQ]; backward data
/// col = W^T * dy_n, then col2im; backward filter dW += dy_n * col(x_n)^T, with one partial dW per
/// extra worker summed at the end. Pointwise (1x1, stride 1, no padding) convolutions skip im2col:
/// col(x_n) is x_n itself. Scratch is sized by <see cref="Prepare"/> when a network is built (direct
/// kernels, GEMM) or on first use (Winograd), and reused by every later step.
/// </summary>
internal sealed unsafe class CpuConvolution
{
    private float[][] _columns = [];
    private float[][] _partials = [];
    private long _columnLength;
    private long _partialLength;
    private readonly DirectConvolution _direct = new();
    private readonly WinogradConvolution _winograd = new();

    /// <summary>Which algorithm runs each shape and pass.</summary>
    public ConvolutionChoice Choice { get; } = new();

    public void Prepare(ConvGeometry g)
    {
        if (DirectConvolution.Supports(g)) _direct.Prepare(g);
        if (ConvolutionChoice.ByRule(g, ConvPass.Forward) == ConvAlgorithm.Gemm) PrepareGemm(g);
    }

    private void PrepareGemm(ConvGeometry g)
    {
        int workers = CpuParallel.Workers;
        long col = g.IsPointwise ? 0 : (long)g.Crs * g.P * g.Q;
        long partial = (long)g.K * g.Crs;
        if (col > _columnLength || _columns.Length < workers)
        {
            _columnLength = Math.Max(col, _columnLength);
            _columns = new float[workers][];
            for (int i = 0; i < workers; i++) _columns[i] = GC.AllocateUninitializedArray<float>((int)Math.Max(1, _columnLength), pinned: true);
        }
        if (partial > _partialLength || _partials.Length < workers)
        {
            _partialLength = Math.Max(partial, _partialLength);
            _partials = new float[workers][];
            for (int i = 0; i < workers; i++) _partials[i] = GC.AllocateUninitializedArray<float>((int)_partialLength, pinned: true);
        }
    }

    /// <summary>y = conv(x, w) + bias (+ ReLU) with the bias applied as the output is written, where the chosen algorithm can; false elsewhere (nothing done).</summary>
    public bool TryForwardWithBias(Tensor x, Tensor w, Tensor bias, bool relu, Tensor y, ConvGeometry g)
    {
        var a = Choice.For(g, ConvPass.Forward, y, alg => RunForward(alg, x, w, y, g));
        switch (a)
        {
            case ConvAlgorithm.Direct: _direct.Forward(x, w, y, g, bias, relu); return true;
            case ConvAlgorithm.Winograd2: _winograd.Forward(2, x, w, y, g, bias, relu); return true;
            case ConvAlgorithm.Winograd4: _winograd.Forward(4, x, w, y, g, bias, relu); return true;
            default: return false;
        }
    }

    public ConvAlgorithm Forward(Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        var a = Choice.For(g, ConvPass.Forward, y, alg => RunForward(alg, x, w, y, g));
        RunForward(a, x, w, y, g);
        return a;
    }

    public ConvAlgorithm BackwardData(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        var a = Choice.For(g, ConvPass.BackwardData, dx, alg => RunBackwardData(alg, dy, w, dx, g, accumulate));
        RunBackwardData(a, dy, w, dx, g, accumulate);
        return a;
    }

    public ConvAlgorithm BackwardFilter(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        var a = Choice.For(g, ConvPass.BackwardFilter, dw, alg => RunBackwardFilter(alg, x, dy, dw, g));
        RunBackwardFilter(a, x, dy, dw, g);
        return a;
    }

    internal void RunForward(ConvAlgorithm a, Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        switch (a)
        {
            case ConvAlgorithm.Direct: _direct.Forward(x, w, y, g); break;
            case ConvAlgorithm.Winograd2: _winograd.Forward(2, x, w, y, g); break;
            case ConvAlgorithm.Winograd4: _winograd.Forward(4, x, w, y, g); break;
            default: GemmForward(x, w, y, g); break;
        }
    }

    internal void RunBackwardData(ConvAlgorithm a, Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        switch (a)
        {
            case ConvAlgorithm.Direct: _direct.BackwardData(dy, w, dx, g, accumulate); break;
            case ConvAlgorithm.Winograd2: _winograd.BackwardData(2, dy, w, dx, g, accumulate); break;
            case ConvAlgorithm.Winograd4: _winograd.BackwardData(4, dy, w, dx, g, accumulate); break;
            default: GemmBackwardData(dy, w, dx, g, accumulate); break;
        }
    }

    internal void RunBackwardFilter(ConvAlgorithm a, Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        switch (a)
        {
            case ConvAlgorithm.Direct: _direct.BackwardFilter(x, dy, dw, g); break;
            case ConvAlgorithm.Winograd2: _winograd.BackwardFilter(2, x, dy, dw, g); break;
            case ConvAlgorithm.Winograd4: _winograd.BackwardFilter(4, x, dy, dw, g); break;
            default: GemmBackwardFilter(x, dy, dw, g); break;
        }
    }

    private void GemmForward(Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        PrepareGemm(g);
        nint px = (nint)CpuTensor.Ptr(x), pw = (nint)CpuTensor.Ptr(w), py = (nint)CpuTensor.Ptr(y);
        long xStride = (long)g.C * g.H * g.W, yStride = (long)g.K * g.P * g.Q;
        int pq = g.P * g.Q;
        ForImages(g.N, (worker, n, parallelInside) =>
        {
            float* xn = (float*)px + n * xStride;
            float* yn = (float*)py + n * yStride;
            float* b = xn;
            fixed (float* col = _columns[worker])
            {
                if (!g.IsPointwise)
                {
                    Im2Col(xn, g, col);
                    b = col;
                }
                Multiply(parallelInside, false, false, g.K, pq, g.Crs, (float*)pw, g.Crs, b, pq, 0f, yn, pq);
            }
        });
    }

    private void GemmBackwardData(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        PrepareGemm(g);
        nint pdy = (nint)CpuTensor.Ptr(dy), pw = (nint)CpuTensor.Ptr(w), pdx = (nint)CpuTensor.Ptr(dx);
        long xStride = (long)g.C * g.H * g.W, yStride = (long)g.K * g.P * g.Q;
        int pq = g.P * g.Q;
        ForImages(g.N, (worker, n, parallelInside) =>
        {
            float* dyn = (float*)pdy + n * yStride;
            float* dxn = (float*)pdx + n * xStride;
            if (g.IsPointwise)
            {
                Multiply(parallelInside, true, false, g.C, pq, g.K, (float*)pw, g.Crs, dyn, pq, accumulate ? 1f : 0f, dxn, pq);
                return;
            }
            fixed (float* col = _columns[worker])
            {
                Multiply(parallelInside, true, false, g.Crs, pq, g.K, (float*)pw, g.Crs, dyn, pq, 0f, col, pq);
                if (!accumulate) new Span<float>(dxn, (int)xStride).Clear();
                Col2Im(col, g, dxn);
            }
        });
    }

    private void GemmBackwardFilter(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        PrepareGemm(g);
        nint px = (nint)CpuTensor.Ptr(x), pdy = (nint)CpuTensor.Ptr(dy), pdw = (nint)CpuTensor.Ptr(dw);
        long xStride = (long)g.C * g.H * g.W, yStride = (long)g.K * g.P * g.Q;
        int pq = g.P * g.Q;
        int crs = g.Crs;
        int workers = WorkersFor(g.N);
        var touched = new bool[workers];
        ForImages(g.N, (worker, n, parallelInside) =>
        {
            float* xn = (float*)px + n * xStride;
            float* dyn = (float*)pdy + n * yStride;
            fixed (float* col = _columns[worker]) fixed (float* partial = _partials[worker])
            {
                // Worker 0 accumulates straight into dW; the others into their own partial, summed below.
                float* target = worker == 0 ? (float*)pdw : partial;
                float beta = worker == 0 || touched[worker] ? 1f : 0f;
                touched[worker] = true;
                float* b = xn;
                if (!g.IsPointwise)
                {
                    Im2Col(xn, g, col);
                    b = col;
                }
                Multiply(parallelInside, false, true, g.K, crs, pq, dyn, pq, b, pq, beta, target, crs);
            }
        });
        var dwSpan = new Span<float>((float*)pdw, g.K * crs);
        for (int w = 1; w < workers; w++)
            if (touched[w])
                System.Numerics.Tensors.TensorPrimitives.Add(dwSpan, _partials[w].AsSpan(0, g.K * crs), dwSpan);
    }

    private static int WorkersFor(int n) => Math.Max(1, Math.Min(CpuParallel.Workers, n));

    /// <summary>
    /// Splits images across workers. With fewer images than workers (small evaluation batches)
    /// each image's GEMM is parallel instead.
    /// </summary>
    private static void ForImages(int n, Action<int, long, bool> body)
    {
        int workers = WorkersFor(n);
        bool parallelInside = n < CpuParallel.Workers;
        if (workers == 1)
        {
            for (long i = 0; i < n; i++) body(0, i, parallelInside);
            return;
        }
        CpuParallel.For(workers, w =>
        {
            long start = (long)n * w / workers, end = (long)n * (w + 1) / workers;
            for (long i = start; i < end; i++) body(w, i, false);
        });
    }

    private static void Multiply(bool parallel, bool ta, bool tb, int m, int n, int k, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (parallel) Gemm.MultiplyParallel(ta, tb, m, n, k, 1f, a, lda, b, ldb, beta, c, ldc);
        else Gemm.Multiply(ta, tb, m, n, k, 1f, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>col[(c*R + r)*S + s][p*Q + q] = x[c][p*stride - pad + r][q*stride - pad + s], zero outside.</summary>
    internal static void Im2Col(float* x, ConvGeometry g, float* col)
    {
        int pq = g.P * g.Q;
        for (int c = 0; c < g.C; c++)
        for (int r = 0; r < g.R; r++)
        for (int s = 0; s < g.S; s++)
        {
            float* row = col + (long)((c * g.R + r) * g.S + s) * pq;
            float* plane = x + (long)c * g.H * g.W;
            // Output columns q whose input column iw = q*stride - pad + s lies inside [0, W).
            int qLo = CeilDiv(g.Padding - s, g.Stride);
            if (qLo < 0) qLo = 0;
            int qHi = FloorDiv(g.W - 1 + g.Padding - s, g.Stride) + 1;
            if (qHi > g.Q) qHi = g.Q;
            for (int p = 0; p < g.P; p++)
            {
                float* dst = row + p * g.Q;
                int ih = p * g.Stride - g.Padding + r;
                if (ih < 0 || ih >= g.H || qHi <= qLo)
                {
                    new Span<float>(dst, g.Q).Clear();
                    continue;
                }
                float* src = plane + (long)ih * g.W;
                for (int q = 0; q < qLo; q++) dst[q] = 0;
                if (g.Stride == 1)
                {
                    int iw0 = qLo - g.Padding + s;
                    new ReadOnlySpan<float>(src + iw0, qHi - qLo).CopyTo(new Span<float>(dst + qLo, qHi - qLo));
                }
                else
                {
                    for (int q = qLo; q < qHi; q++) dst[q] = src[q * g.Stride - g.Padding + s];
                }
                for (int q = qHi; q < g.Q; q++) dst[q] = 0;
            }
        }
    }

    /// <summary>The adjoint of <see cref="Im2Col"/>: scatters-adds the column matrix back into x.</summary>
    internal static void Col2Im(float* col, ConvGeometry g, float* x)
    {
        int pq = g.P * g.Q;
        for (int c = 0; c < g.C; c++)
        for (int r = 0; r < g.R; r++)
        for (int s = 0; s < g.S; s++)
        {
            float* row = col + (long)((c * g.R + r) * g.S + s) * pq;
            float* plane = x + (long)c * g.H * g.W;
            int qLo = CeilDiv(g.Padding - s, g.Stride);
            if (qLo < 0) qLo = 0;
            int qHi = FloorDiv(g.W - 1 + g.Padding - s, g.Stride) + 1;
            if (qHi > g.Q) qHi = g.Q;
            if (qHi <= qLo) continue;
            for (int p = 0; p < g.P; p++)
            {
                int ih = p * g.Stride - g.Padding + r;
                if (ih < 0 || ih >= g.H) continue;
                float* src = row + p * g.Q;
                float* dst = plane + (long)ih * g.W;
                if (g.Stride == 1)
                {
                    int iw0 = qLo - g.Padding + s;
                    var d = new Span<float>(dst + iw0, qHi - qLo);
                    System.Numerics.Tensors.TensorPrimitives.Add(d, new ReadOnlySpan<float>(src + qLo, qHi - qLo), d);
                }
                else
                {
                    for (int q = qLo; q < qHi; q++) dst[q * g.Stride - g.Padding + s] += src[q];
                }
            }
        }
    }

    private static int CeilDiv(int a, int b) => a >= 0 ? (a + b - 1) / b : -((-a) / b);
    private static int FloorDiv(int a, int b) => a >= 0 ? a / b : -((-a + b - 1) / b);
}
