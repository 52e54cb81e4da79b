using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using CudaSwa.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace CudaSwa.Cpu;

/// <summary>
/// Direct 3x3 / stride 1 / pad 1 convolution with AVX-512 (the shape of almost every layer in the
/// CIFAR ResNets), without im2col. Each image is copied into a zero-padded plane per channel of
/// width W+2; on that "virtual grid" (output position v = oh*(W+2) + ow, the last two columns of
/// each row are scratch) the input of tap (r, s) at v is simply plane[v + r*(W+2) + s], so the
/// convolution becomes contiguous vector loads and broadcast FMAs:
/// - forward: a register tile of 8 output channels x 48 grid positions (24 zmm accumulators);
///   weights are repacked as [channel block][c][tap][8] so each broadcast reads contiguous memory;
/// - backward data: the same kernel on the padded dy with the weights transposed and flipped
///   (a stride-1 convolution's adjoint is the full correlation with the rotated kernel);
/// - backward filter: tiles of 8 output channels x 3 horizontal taps accumulate dy x shifted x
///   over the grid, in vector form across all of a worker's images, summed horizontally once.
/// The cost of the grid is 2/(W+2) wasted columns (6% at 32x32, 20% at 8x8).
/// </summary>
internal sealed unsafe class DirectConv3x3
{
    private const int KB = 8;          // output channels per register tile
    private const int VB = 3;          // 16-float vectors per register tile along the grid
    private const int Tile = 16 * VB;  // grid positions per register tile

    public static bool Supports(ConvGeometry g) =>
        Vector512.IsHardwareAccelerated && g.R == 3 && g.S == 3 && g.Stride == 1 && g.Padding == 1 && g.W >= 2;

    private float[][] _planes = [];   // per worker: padded input planes
    private float[][] _grid = [];     // per worker: outputs (forward) or dy (filter) on the virtual grid
    private float[][] _acc = [];      // per worker: filter-gradient vector accumulators
    private float[] _weights = [];    // packed weights, shared

    private readonly record struct Layout(int Wp, int V, int VPad, int PlaneStride)
    {
        public static Layout For(int h, int w)
        {
            int wp = w + 2;
            int v = h * wp;
            int vpad = (v + Tile - 1) / Tile * Tile;
            // Loads reach vpad - 1 + 2*wp + 2 + 15 at most; round up to a cache line.
            int stride = (vpad + 2 * wp + 2 + 16 + 15) / 16 * 16;
            return new Layout(wp, v, vpad, stride);
        }
    }

    private static int Blocks(int channels) => (channels + KB - 1) / KB;

    public void Prepare(ConvGeometry g)
    {
        int workers = CpuParallel.Workers;
        var l = Layout.For(g.H, g.W);
        int maxChannels = Math.Max(g.C, g.K);
        int maxBlocks = Math.Max(Blocks(g.C), Blocks(g.K)) * KB;
        Grow(ref _planes, workers, (long)maxChannels * l.PlaneStride);
        Grow(ref _grid, workers, (long)maxBlocks * l.VPad);
        Grow(ref _acc, workers, (long)Blocks(g.K) * g.C * 3 * KB * 3 * 16);
        long w = (long)Math.Max(Blocks(g.K), Blocks(g.C)) * KB * maxChannels * 9;
        if (_weights.Length < w) _weights = GC.AllocateUninitializedArray<float>((int)w, pinned: true);
    }

    private static void Grow(ref float[][] buffers, int workers, long length)
    {
        if (buffers.Length >= workers && buffers.All(b => b.Length >= length)) return;
        long keep = buffers.Length > 0 ? buffers.Max(b => (long)b.Length) : 0;
        length = Math.Max(length, keep);
        buffers = new float[workers][];
        for (int i = 0; i < workers; i++) buffers[i] = GC.AllocateUninitializedArray<float>(checked((int)length), pinned: true);
    }

    // ------------------------------------------------------------------ forward and backward data

    public void Forward(Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        Prepare(g);
        fixed (float* packed = _weights)
        {
            PackForward(CpuTensor.Ptr(w), g.K, g.C, packed);
            Run(CpuTensor.Ptr(x), g.C, CpuTensor.Ptr(y), g.K, g.N, g.H, g.W, packed, accumulate: false);
        }
    }

    public void BackwardData(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        Prepare(g);
        fixed (float* packed = _weights)
        {
            PackTransposedFlipped(CpuTensor.Ptr(w), g.K, g.C, packed);
            Run(CpuTensor.Ptr(dy), g.K, CpuTensor.Ptr(dx), g.C, g.N, g.H, g.W, packed, accumulate);
        }
    }

    /// <summary>packed[kb][c][tap][k] = w[kb*8 + k][c][tap] (zero beyond K).</summary>
    private static void PackForward(float* w, int k, int c, float* packed)
    {
        for (int kb = 0; kb < Blocks(k); kb++)
        for (int ch = 0; ch < c; ch++)
        for (int t = 0; t < 9; t++)
        for (int j = 0; j < KB; j++)
        {
            int o = kb * KB + j;
            packed[(((long)kb * c + ch) * 9 + t) * KB + j] = o < k ? w[((long)o * c + ch) * 9 + t] : 0f;
        }
    }

    /// <summary>For dx = corr(pad(dy), w'): w'[c][k][8 - tap] = w[k][c][tap], packed like <see cref="PackForward"/> with c as output.</summary>
    private static void PackTransposedFlipped(float* w, int k, int c, float* packed)
    {
        for (int cb = 0; cb < Blocks(c); cb++)
        for (int o = 0; o < k; o++)
        for (int t = 0; t < 9; t++)
        for (int j = 0; j < KB; j++)
        {
            int ch = cb * KB + j;
            packed[(((long)cb * k + o) * 9 + t) * KB + j] = ch < c ? w[((long)o * c + ch) * 9 + (8 - t)] : 0f;
        }
    }

    private void Run(float* input, int inC, float* output, int outC, int n, int h, int w, float* packed, bool accumulate)
    {
        var l = Layout.For(h, w);
        int workers = Math.Max(1, Math.Min(CpuParallel.Workers, n));
        nint pin = (nint)input, pout = (nint)output, pw = (nint)packed;
        CpuParallel.For(workers, worker =>
        {
            long start = (long)n * worker / workers, end = (long)n * (worker + 1) / workers;
            fixed (float* planes = _planes[worker]) fixed (float* grid = _grid[worker])
            {
                for (long i = start; i < end; i++)
                {
                    float* src = (float*)pin + i * inC * h * w;
                    float* dst = (float*)pout + i * outC * h * w;
                    PadPlanes(src, inC, h, w, l, planes);
                    for (int ob = 0; ob < Blocks(outC); ob++)
                    {
                        float* wb = (float*)pw + (long)ob * inC * 9 * KB;
                        float* gb = grid + (long)ob * KB * l.VPad;
                        for (int v0 = 0; v0 < l.VPad; v0 += Tile)
                            ForwardTile(planes + v0, l.PlaneStride, l.Wp, inC, wb, gb + v0, l.VPad);
                    }
                    FromGrid(grid, outC, h, w, l, dst, accumulate);
                }
            }
        });
    }

    /// <summary>Copies C planes of h x w into zero-padded planes of (h+2) x (w+2) (plus zero slack).</summary>
    private static void PadPlanes(float* src, int channels, int h, int w, Layout l, float* planes)
    {
        for (int c = 0; c < channels; c++)
        {
            float* plane = planes + (long)c * l.PlaneStride;
            new Span<float>(plane, l.Wp + 1).Clear();                    // top border row and left pad of row 1
            for (int r = 0; r < h; r++)
            {
                float* row = plane + (r + 1) * l.Wp + 1;
                new ReadOnlySpan<float>(src + ((long)c * h + r) * w, w).CopyTo(new Span<float>(row, w));
                row[w] = 0f;                                              // right pad of this row
                row[w + 1] = 0f;                                          // left pad of the next row
            }
            int tail = (h + 1) * l.Wp + 1;
            new Span<float>(plane + tail, l.PlaneStride - tail).Clear(); // bottom border row and slack
        }
    }

    /// <summary>Extracts the valid w columns of each grid row into NCHW output (add when accumulating).</summary>
    private static void FromGrid(float* grid, int channels, int h, int w, Layout l, float* dst, bool accumulate)
    {
        for (int c = 0; c < channels; c++)
        for (int r = 0; r < h; r++)
        {
            var from = new ReadOnlySpan<float>(grid + (long)c * l.VPad + r * l.Wp, w);
            var to = new Span<float>(dst + ((long)c * h + r) * w, w);
            if (accumulate) TensorPrimitives.Add(to, from, to);
            else from.CopyTo(to);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardTile(float* planes, int planeStride, int wp, int inC, float* wb, float* outGrid, int vpad)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default;
        Vector512<float> a40 = default, a41 = default, a42 = default, a50 = default, a51 = default, a52 = default;
        Vector512<float> a60 = default, a61 = default, a62 = default, a70 = default, a71 = default, a72 = default;
        for (int c = 0; c < inC; c++)
        {
            float* p = planes + (long)c * planeStride;
            for (int t = 0; t < 9; t++)
            {
                float* q = p + (t / 3) * wp + (t % 3);
                var x0 = Vector512.Load(q);
                var x1 = Vector512.Load(q + 16);
                var x2 = Vector512.Load(q + 32);
                var b = Vector512.Create(wb[0]);
                a00 = Vector512.FusedMultiplyAdd(b, x0, a00); a01 = Vector512.FusedMultiplyAdd(b, x1, a01); a02 = Vector512.FusedMultiplyAdd(b, x2, a02);
                b = Vector512.Create(wb[1]);
                a10 = Vector512.FusedMultiplyAdd(b, x0, a10); a11 = Vector512.FusedMultiplyAdd(b, x1, a11); a12 = Vector512.FusedMultiplyAdd(b, x2, a12);
                b = Vector512.Create(wb[2]);
                a20 = Vector512.FusedMultiplyAdd(b, x0, a20); a21 = Vector512.FusedMultiplyAdd(b, x1, a21); a22 = Vector512.FusedMultiplyAdd(b, x2, a22);
                b = Vector512.Create(wb[3]);
                a30 = Vector512.FusedMultiplyAdd(b, x0, a30); a31 = Vector512.FusedMultiplyAdd(b, x1, a31); a32 = Vector512.FusedMultiplyAdd(b, x2, a32);
                b = Vector512.Create(wb[4]);
                a40 = Vector512.FusedMultiplyAdd(b, x0, a40); a41 = Vector512.FusedMultiplyAdd(b, x1, a41); a42 = Vector512.FusedMultiplyAdd(b, x2, a42);
                b = Vector512.Create(wb[5]);
                a50 = Vector512.FusedMultiplyAdd(b, x0, a50); a51 = Vector512.FusedMultiplyAdd(b, x1, a51); a52 = Vector512.FusedMultiplyAdd(b, x2, a52);
                b = Vector512.Create(wb[6]);
                a60 = Vector512.FusedMultiplyAdd(b, x0, a60); a61 = Vector512.FusedMultiplyAdd(b, x1, a61); a62 = Vector512.FusedMultiplyAdd(b, x2, a62);
                b = Vector512.Create(wb[7]);
                a70 = Vector512.FusedMultiplyAdd(b, x0, a70); a71 = Vector512.FusedMultiplyAdd(b, x1, a71); a72 = Vector512.FusedMultiplyAdd(b, x2, a72);
                wb += KB;
            }
        }
        float* o = outGrid;
        a00.Store(o); a01.Store(o + 16); a02.Store(o + 32); o += vpad;
        a10.Store(o); a11.Store(o + 16); a12.Store(o + 32); o += vpad;
        a20.Store(o); a21.Store(o + 16); a22.Store(o + 32); o += vpad;
        a30.Store(o); a31.Store(o + 16); a32.Store(o + 32); o += vpad;
        a40.Store(o); a41.Store(o + 16); a42.Store(o + 32); o += vpad;
        a50.Store(o); a51.Store(o + 16); a52.Store(o + 32); o += vpad;
        a60.Store(o); a61.Store(o + 16); a62.Store(o + 32); o += vpad;
        a70.Store(o); a71.Store(o + 16); a72.Store(o + 32);
    }

    // ------------------------------------------------------------------ backward filter

    public void BackwardFilter(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        Prepare(g);
        var l = Layout.For(g.H, g.W);
        int n = g.N, c = g.C, k = g.K, h = g.H, w = g.W;
        int kBlocks = Blocks(k);
        int tiles = kBlocks * c * 3;
        int tileFloats = KB * 3 * 16;
        int workers = Math.Max(1, Math.Min(CpuParallel.Workers, n));
        nint px = (nint)CpuTensor.Ptr(x), pdy = (nint)CpuTensor.Ptr(dy);
        CpuParallel.For(workers, worker =>
        {
            long start = (long)n * worker / workers, end = (long)n * (worker + 1) / workers;
            fixed (float* planes = _planes[worker]) fixed (float* grid = _grid[worker]) fixed (float* acc = _acc[worker])
            {
                new Span<float>(acc, tiles * tileFloats).Clear();
                for (long i = start; i < end; i++)
                {
                    PadPlanes((float*)px + i * c * h * w, c, h, w, l, planes);
                    ToGrid((float*)pdy + i * k * h * w, k, kBlocks * KB, h, w, l, grid);
                    for (int kb = 0; kb < kBlocks; kb++)
                    for (int ch = 0; ch < c; ch++)
                    for (int r = 0; r < 3; r++)
                    {
                        float* tile = acc + (long)((kb * c + ch) * 3 + r) * tileFloats;
                        FilterTile(grid + (long)kb * KB * l.VPad, l.VPad, planes + (long)ch * l.PlaneStride + r * l.Wp, tile);
                    }
                }
            }
        });
        // Horizontal sums of every worker's vector accumulators, added into dW.
        float* dwp = CpuTensor.Ptr(dw);
        for (int worker = 0; worker < workers; worker++)
        fixed (float* acc = _acc[worker])
        {
            for (int kb = 0; kb < kBlocks; kb++)
            for (int ch = 0; ch < c; ch++)
            for (int r = 0; r < 3; r++)
            {
                float* tile = acc + (long)((kb * c + ch) * 3 + r) * tileFloats;
                for (int j = 0; j < KB; j++)
                {
                    int o = kb * KB + j;
                    if (o >= k) break;
                    for (int s = 0; s < 3; s++)
                        dwp[((long)o * c + ch) * 9 + r * 3 + s] += Vector512.Sum(Vector512.Load(tile + (j * 3 + s) * 16));
                }
            }
        }
    }

    /// <summary>dy of one image onto the grid: each row of w values followed by zeros, zero rows up to the padded channel count.</summary>
    private static void ToGrid(float* src, int channels, int paddedChannels, int h, int w, Layout l, float* grid)
    {
        for (int c = 0; c < paddedChannels; c++)
        {
            float* plane = grid + (long)c * l.VPad;
            if (c >= channels)
            {
                new Span<float>(plane, l.VPad).Clear();
                continue;
            }
            for (int r = 0; r < h; r++)
            {
                float* row = plane + r * l.Wp;
                new ReadOnlySpan<float>(src + ((long)c * h + r) * w, w).CopyTo(new Span<float>(row, w));
                row[w] = 0f;
                row[w + 1] = 0f;
            }
            new Span<float>(plane + l.V, l.VPad - l.V).Clear();
        }
    }

    /// <summary>acc[k][s] += sum over the grid of dy[k][v] * plane[v + s], for 8 output channels and the 3 taps of one kernel row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FilterTile(float* dyGrid, int vpad, float* plane, float* acc)
    {
        var a00 = Vector512.Load(acc + 0 * 16); var a01 = Vector512.Load(acc + 1 * 16); var a02 = Vector512.Load(acc + 2 * 16);
        var a10 = Vector512.Load(acc + 3 * 16); var a11 = Vector512.Load(acc + 4 * 16); var a12 = Vector512.Load(acc + 5 * 16);
        var a20 = Vector512.Load(acc + 6 * 16); var a21 = Vector512.Load(acc + 7 * 16); var a22 = Vector512.Load(acc + 8 * 16);
        var a30 = Vector512.Load(acc + 9 * 16); var a31 = Vector512.Load(acc + 10 * 16); var a32 = Vector512.Load(acc + 11 * 16);
        var a40 = Vector512.Load(acc + 12 * 16); var a41 = Vector512.Load(acc + 13 * 16); var a42 = Vector512.Load(acc + 14 * 16);
        var a50 = Vector512.Load(acc + 15 * 16); var a51 = Vector512.Load(acc + 16 * 16); var a52 = Vector512.Load(acc + 17 * 16);
        var a60 = Vector512.Load(acc + 18 * 16); var a61 = Vector512.Load(acc + 19 * 16); var a62 = Vector512.Load(acc + 20 * 16);
        var a70 = Vector512.Load(acc + 21 * 16); var a71 = Vector512.Load(acc + 22 * 16); var a72 = Vector512.Load(acc + 23 * 16);
        for (int v = 0; v < vpad; v += 16)
        {
            var x0 = Vector512.Load(plane + v);
            var x1 = Vector512.Load(plane + v + 1);
            var x2 = Vector512.Load(plane + v + 2);
            float* d = dyGrid + v;
            var d0 = Vector512.Load(d);
            a00 = Vector512.FusedMultiplyAdd(d0, x0, a00); a01 = Vector512.FusedMultiplyAdd(d0, x1, a01); a02 = Vector512.FusedMultiplyAdd(d0, x2, a02);
            var d1 = Vector512.Load(d + vpad);
            a10 = Vector512.FusedMultiplyAdd(d1, x0, a10); a11 = Vector512.FusedMultiplyAdd(d1, x1, a11); a12 = Vector512.FusedMultiplyAdd(d1, x2, a12);
            var d2 = Vector512.Load(d + 2 * vpad);
            a20 = Vector512.FusedMultiplyAdd(d2, x0, a20); a21 = Vector512.FusedMultiplyAdd(d2, x1, a21); a22 = Vector512.FusedMultiplyAdd(d2, x2, a22);
            var d3 = Vector512.Load(d + 3 * vpad);
            a30 = Vector512.FusedMultiplyAdd(d3, x0, a30); a31 = Vector512.FusedMultiplyAdd(d3, x1, a31); a32 = Vector512.FusedMultiplyAdd(d3, x2, a32);
            var d4 = Vector512.Load(d + 4 * vpad);
            a40 = Vector512.FusedMultiplyAdd(d4, x0, a40); a41 = Vector512.FusedMultiplyAdd(d4, x1, a41); a42 = Vector512.FusedMultiplyAdd(d4, x2, a42);
            var d5 = Vector512.Load(d + 5 * vpad);
            a50 = Vector512.FusedMultiplyAdd(d5, x0, a50); a51 = Vector512.FusedMultiplyAdd(d5, x1, a51); a52 = Vector512.FusedMultiplyAdd(d5, x2, a52);
            var d6 = Vector512.Load(d + 6 * vpad);
            a60 = Vector512.FusedMultiplyAdd(d6, x0, a60); a61 = Vector512.FusedMultiplyAdd(d6, x1, a61); a62 = Vector512.FusedMultiplyAdd(d6, x2, a62);
            var d7 = Vector512.Load(d + 7 * vpad);
            a70 = Vector512.FusedMultiplyAdd(d7, x0, a70); a71 = Vector512.FusedMultiplyAdd(d7, x1, a71); a72 = Vector512.FusedMultiplyAdd(d7, x2, a72);
        }
        a00.Store(acc + 0 * 16); a01.Store(acc + 1 * 16); a02.Store(acc + 2 * 16);
        a10.Store(acc + 3 * 16); a11.Store(acc + 4 * 16); a12.Store(acc + 5 * 16);
        a20.Store(acc + 6 * 16); a21.Store(acc + 7 * 16); a22.Store(acc + 8 * 16);
        a30.Store(acc + 9 * 16); a31.Store(acc + 10 * 16); a32.Store(acc + 11 * 16);
        a40.Store(acc + 12 * 16); a41.Store(acc + 13 * 16); a42.Store(acc + 14 * 16);
        a50.Store(acc + 15 * 16); a51.Store(acc + 16 * 16); a52.Store(acc + 17 * 16);
        a60.Store(acc + 18 * 16); a61.Store(acc + 19 * 16); a62.Store(acc + 20 * 16);
        a70.Store(acc + 21 * 16); a71.Store(acc + 22 * 16); a72.Store(acc + 23 * 16);
    }
}
