using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.Intrinsics;
using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Cpu;

/// <summary>Elementwise ops on the CPU (TensorPrimitives and Vector256 with scalar tails), split across workers for large tensors.</summary>
internal static unsafe class CpuPointwise
{
    private const long MinChunk = 1 << 15;

    public static void ReluForward(Tensor x, Tensor y)
    {
        nint px = (nint)CpuTensor.Ptr(x), py = (nint)CpuTensor.Ptr(y);
        CpuParallel.ForRange(x.Length, MinChunk, (s, e) =>
            TensorPrimitives.Max(new ReadOnlySpan<float>((float*)px + s, (int)(e - s)), 0f, new Span<float>((float*)py + s, (int)(e - s))));
    }

    public static void ReluBackward(Tensor y, Tensor dy, Tensor dx, bool accumulate)
    {
        nint py = (nint)CpuTensor.Ptr(y), pdy = (nint)CpuTensor.Ptr(dy), pdx = (nint)CpuTensor.Ptr(dx);
        CpuParallel.ForRange(y.Length, MinChunk, (s, e) =>
        {
            float* ys = (float*)py, dys = (float*)pdy, dxs = (float*)pdx;
            long i = s;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i + 16 <= e; i += 16)
                {
                    var mask = Vector512.GreaterThan(Vector512.Load(ys + i), Vector512<float>.Zero);
                    var g = Vector512.ConditionalSelect(mask, Vector512.Load(dys + i), Vector512<float>.Zero);
                    if (accumulate) g += Vector512.Load(dxs + i);
                    g.Store(dxs + i);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 8 <= e; i += 8)
                {
                    var mask = Vector256.GreaterThan(Vector256.Load(ys + i), Vector256<float>.Zero);
                    var g = Vector256.ConditionalSelect(mask, Vector256.Load(dys + i), Vector256<float>.Zero);
                    if (accumulate) g += Vector256.Load(dxs + i);
                    g.Store(dxs + i);
                }
            }
            for (; i < e; i++)
            {
                float g = ys[i] > 0 ? dys[i] : 0f;
                dxs[i] = accumulate ? dxs[i] + g : g;
            }
        });
    }

    public static void Add(Tensor a, Tensor b, Tensor y)
    {
        nint pa = (nint)CpuTensor.Ptr(a), pb = (nint)CpuTensor.Ptr(b), py = (nint)CpuTensor.Ptr(y);
        CpuParallel.ForRange(a.Length, MinChunk, (s, e) =>
        {
            int len = (int)(e - s);
            TensorPrimitives.Add(new ReadOnlySpan<float>((float*)pa + s, len), new ReadOnlySpan<float>((float*)pb + s, len), new Span<float>((float*)py + s, len));
        });
    }

    public static void Accumulate(Tensor source, Tensor destination, bool accumulate)
    {
        nint ps = (nint)CpuTensor.Ptr(source), pd = (nint)CpuTensor.Ptr(destination);
        CpuParallel.ForRange(source.Length, MinChunk, (s, e) =>
        {
            int len = (int)(e - s);
            var src = new ReadOnlySpan<float>((float*)ps + s, len);
            var dst = new Span<float>((float*)pd + s, len);
            if (accumulate) TensorPrimitives.Add(dst, src, dst);
            else src.CopyTo(dst);
        });
    }

    public static void Fill(Tensor t, float value)
    {
        nint p = (nint)CpuTensor.Ptr(t);
        CpuParallel.ForRange(t.Length, MinChunk, (s, e) => new Span<float>((float*)p + s, (int)(e - s)).Fill(value));
    }

    public static void CopyBytes(Tensor source, Tensor destination)
    {
        int size = source.DType.SizeInBytes();
        byte* src = (byte*)((CpuBuffer)source.Buffer).Pointer + source.Offset * size;
        byte* dst = (byte*)((CpuBuffer)destination.Buffer).Pointer + destination.Offset * size;
        Buffer.MemoryCopy(src, dst, destination.Length * size, source.Length * size);
    }

    public static void AddChannelBias(Tensor y, Tensor bias)
    {
        int c = y.Shape.C, hw = y.Shape.H * y.Shape.W, n = y.Shape.N;
        float* ys = CpuTensor.Ptr(y), b = CpuTensor.Ptr(bias);
        for (long plane = 0; plane < (long)n * c; plane++)
        {
            var row = new Span<float>(ys + plane * hw, hw);
            TensorPrimitives.Add(row, b[plane % c], row);
        }
    }

    public static void ChannelBiasBackward(Tensor dy, Tensor dBias)
    {
        int c = dy.Shape.C, hw = dy.Shape.H * dy.Shape.W, n = dy.Shape.N;
        float* dys = CpuTensor.Ptr(dy), db = CpuTensor.Ptr(dBias);
        for (int ch = 0; ch < c; ch++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += TensorPrimitives.Sum(new ReadOnlySpan<float>(dys + ((long)i * c + ch) * hw, hw));
            db[ch] += (float)sum;
        }
    }

    /// <summary>y = x * scale + shift (not fused, matching the CUDA twin's separate multiply and add).</summary>
    public static void ScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> y)
    {
        int i = 0;
        ref float xr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
        if (Vector512.IsHardwareAccelerated)
        {
            var vs = Vector512.Create(scale);
            var vb = Vector512.Create(shift);
            for (; i + 16 <= x.Length; i += 16)
                (Vector512.LoadUnsafe(ref xr, (nuint)i) * vs + vb).StoreUnsafe(ref yr, (nuint)i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(shift);
            for (; i + 8 <= x.Length; i += 8)
                (Vector256.LoadUnsafe(ref xr, (nuint)i) * vs + vb).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < x.Length; i++) y[i] = x[i] * scale + shift;
    }

    /// <summary>y[r, j] += b[j] for a (rows, cols) matrix: the bias of a linear layer (twin of the add_row_bias kernel).</summary>
    public static void AddRowBias(float* y, float* b, int rows, int cols)
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
    public static void ColumnSumAccumulate(float* dy, float* db, int rows, int cols)
    {
        for (int j = 0; j < cols; j++)
        {
            double sum = 0;
            for (int r = 0; r < rows; r++) sum += dy[(long)r * cols + j];
            db[j] += (float)sum;
        }
    }

    public static void DropoutForward(Tensor x, Tensor y, float p, ulong seed, ulong stream)
    {
        float* xs = CpuTensor.Ptr(x), ys = CpuTensor.Ptr(y);
        float scale = 1f / (1f - p);
        for (long i = 0; i < x.Length; i++)
            ys[i] = Philox.DropoutKeep(seed, stream, i, p) ? xs[i] * scale : 0f;
    }

    public static void DropoutBackward(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate)
    {
        float* dys = CpuTensor.Ptr(dy), dxs = CpuTensor.Ptr(dx);
        float scale = 1f / (1f - p);
        for (long i = 0; i < dy.Length; i++)
        {
            float g = Philox.DropoutKeep(seed, stream, i, p) ? dys[i] * scale : 0f;
            dxs[i] = accumulate ? dxs[i] + g : g;
        }
    }
}
