using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace CudaSwa.Cpu;

/// <summary>
/// Direct convolution on AVX-512 for the shapes of the CIFAR models — 3x3 with padding 1 and
/// 1x1 without padding, stride 1 or 2 — without im2col.
///
/// The trick is a "virtual grid": each input channel is copied into a zero-padded plane whose
/// rows are wider than the output by one or two columns, so that the input of every kernel tap
/// at output position v (= row * gridWidth + column) is simply plane[v + offset(tap)]. The
/// convolution then becomes contiguous vector loads and broadcast FMAs; the extra columns are
/// computed and thrown away (6% at 32x32, 20% at 8x8). For stride 1 the planes are the padded
/// channels (grid width W+2). For stride 2 each channel is split into its four polyphase
/// components (even/odd rows x even/odd columns), each padded by one row and column, and every
/// tap reads one component at offset 0 or 1 (grid width W/2+1). A 1x1 convolution is the same
/// with one tap per channel on the (subsampled) channel itself, no padding.
///
/// - Forward: a register tile of 8 output channels x 48 grid positions (24 zmm accumulators)
///   sums over a table of "units" (input plane + tap offset) with weights packed per unit.
/// - Backward data: stride 1 is the same kernel on the padded dy with the kernel transposed and
///   rotated; stride 2 splits dx into its four polyphase components, each a small stride-1
///   correlation of dy with 1, 2 or 4 of the taps.
/// - Backward filter: tiles of 8 output channels x the 3 taps of one kernel row accumulate
///   dy x shifted input over the grid, in vector form across a group of images, summed
///   horizontally once per call.
/// </summary>
internal sealed unsafe class DirectConvolution
{
    private const int KB = 8;          // output channels per register tile
    private const int VB = 3;          // 16-float vectors per forward tile
    private const int Tile = 16 * VB;  // grid positions per forward tile

    public static bool Supports(ConvGeometry g) =>
        Vector512.IsHardwareAccelerated && g.R == g.S && g.W >= 2 &&
        ((g.R == 3 && g.Padding == 1) || (g.R == 1 && g.Padding == 0)) &&
        (g.Stride == 1 || (g.Stride == 2 && g.H % 2 == 0 && g.W % 2 == 0));

    private float[][] _planes = [];   // per worker: input planes of a group of images
    private float[][] _grid = [];     // per worker: outputs (forward) or dy (filter) on the grid, for a group
    private float[][] _acc = [];      // per worker: filter-gradient vector accumulators
    private float[] _weights = [];    // packed weights, shared
    private int[] _units = [];        // unit offsets, shared

    /// <summary>Grid geometry of one image: grid width, valid length, padded length, and plane stride.</summary>
    private readonly record struct Grid(int Width, int Rows, int Cols, int V, int VPad, int PlaneStride)
    {
        public static Grid For(int rows, int cols, int width, int planeRows)
        {
            int v = rows * width;
            int vpad = (v + Tile - 1) / Tile * Tile;
            // Loads reach vpad - 1 + 2*width + 2 + 15 at most past a plane's start.
            int stride = Math.Max(planeRows * width, vpad + 2 * width + 2 + 16);
            stride = (stride + 15) / 16 * 16;
            return new Grid(width, rows, cols, v, vpad, stride);
        }
    }

    /// <summary>The grid the forward pass (and the filter pass) runs on for this geometry.</summary>
    private static Grid OutputGrid(ConvGeometry g) =>
        g.R == 1 ? Grid.For(g.P, g.Q, g.Q, g.P) :
        g.Stride == 1 ? Grid.For(g.H, g.W, g.W + 2, g.H + 2) :
        Grid.For(g.H / 2, g.W / 2, g.W / 2 + 1, g.H / 2 + 1);

    /// <summary>Planes per input channel: 1 (padded or subsampled channel), or 4 polyphase components (3x3, stride 2).</summary>
    private static int PhasesPerChannel(ConvGeometry g) => g.R == 3 && g.Stride == 2 ? 4 : 1;

    /// <summary>Filter-pass accumulator tiles of one output block: 3x3 has 3 kernel rows per channel, 1x1 groups channels in threes.</summary>
    private static int FilterTilesPerBlock(ConvGeometry g) => g.R == 3 ? g.C * 3 : (g.C + 2) / 3;

    private static int Blocks(int channels) => (channels + KB - 1) / KB;

    /// <summary>Images handled together by the filter pass: enough grid work per tile to amortise its accumulators.</summary>
    /// <remarks>
    /// 8,192 floats of dy rows per tile (32 KiB, inside L1 with the input rows) measured best of
    /// 4,096 / 8,192 / 16,384 on the development machine (resnet20 shapes, backward filter).
    /// </remarks>
    private static int GroupSize(Grid grid) => Math.Clamp(8192 / (KB * grid.VPad), 1, 16);

    public void Prepare(ConvGeometry g)
    {
        int workers = CpuParallel.Workers;
        var grid = OutputGrid(g);
        int group = GroupSize(grid);
        int maxChannels = Math.Max(g.C, g.K);
        int maxBlocks = Math.Max(Blocks(g.C), Blocks(g.K)) * KB;
        long planes = (long)maxChannels * PhasesPerChannel(g) * grid.PlaneStride * group;
        Grow(ref _planes, workers, planes);
        Grow(ref _grid, workers, (long)maxBlocks * grid.VPad * group * (g.Stride == 2 ? 4 : 1));
        Grow(ref _acc, workers, (long)Blocks(g.K) * FilterTilesPerBlock(g) * KB * 3 * 16);
        long w = (long)Math.Max(Blocks(g.K), Blocks(g.C)) * KB * maxChannels * 9;
        if (_weights.Length < w) _weights = GC.AllocateUninitializedArray<float>((int)w, pinned: true);
        if (_units.Length < maxChannels * 9) _units = GC.AllocateUninitializedArray<int>(maxChannels * 9, pinned: true);
    }

    private static void Grow(ref float[][] buffers, int workers, long length)
    {
        if (buffers.Length >= workers && buffers.All(b => b.Length >= length)) return;
        long keep = buffers.Length > 0 ? buffers.Max(b => (long)b.Length) : 0;
        length = Math.Max(length, keep);
        buffers = new float[workers][];
        for (int i = 0; i < workers; i++) buffers[i] = GC.AllocateUninitializedArray<float>(checked((int)length), pinned: true);
    }

    // ------------------------------------------------------------------ tap geometry

    /// <summary>Stride 2: which row (column) phase and which padded offset kernel row r (column s) reads.</summary>
    private static (int Phase, int Offset) Stride2Tap(int r) => r == 0 ? (1, 0) : r == 1 ? (0, 1) : (1, 1);

    /// <summary>Offset, from the first input plane, of the input of tap t (= r*3 + s) of channel c.</summary>
    private static int UnitOffset(ConvGeometry g, Grid grid, int c, int t)
    {
        if (g.R == 1) return c * grid.PlaneStride;
        int r = t / 3, s = t % 3;
        if (g.Stride == 1) return c * grid.PlaneStride + r * grid.Width + s;
        var (pr, or) = Stride2Tap(r);
        var (ps, os) = Stride2Tap(s);
        return (c * 4 + pr * 2 + ps) * grid.PlaneStride + or * grid.Width + os;
    }

    // ------------------------------------------------------------------ forward

    /// <summary>
    /// y = conv(x, w); with a <paramref name="bias"/>, y = conv(x, w) + bias[k] (then max(·, 0) when
    /// <paramref name="relu"/>) applied as the output leaves the grid: the same operations, so the
    /// same bits, as a separate bias (and ReLU) pass, without that pass over y.
    /// </summary>
    public void Forward(Tensor x, Tensor w, Tensor y, ConvGeometry g, Tensor bias = default, bool relu = false)
    {
        Prepare(g);
        var grid = OutputGrid(g);
        int taps = g.R * g.S, units = g.C * taps;
        for (int c = 0; c < g.C; c++)
            for (int t = 0; t < taps; t++) _units[c * taps + t] = UnitOffset(g, grid, c, t);
        fixed (float* packed = _weights) fixed (int* unitOffsets = _units)
        {
            // packed[kb][c*taps + t][k] = w[kb*8 + k][c][t]
            float* wp = CpuTensor.Ptr(w);
            for (int kb = 0; kb < Blocks(g.K); kb++)
            for (int u = 0; u < units; u++)
            for (int j = 0; j < KB; j++)
            {
                int o = kb * KB + j;
                packed[((long)kb * units + u) * KB + j] = o < g.K ? wp[(long)o * units + u] : 0f;
            }
            nint px = (nint)CpuTensor.Ptr(x), py = (nint)CpuTensor.Ptr(y), pw = (nint)packed, pu = (nint)unitOffsets;
            nint pb = bias.IsNull ? 0 : (nint)CpuTensor.Ptr(bias);
            ForImages(g.N, (worker, i) =>
            {
                fixed (float* planes = _planes[worker]) fixed (float* gridBuffer = _grid[worker])
                {
                    float* src = (float*)px + i * g.C * g.H * g.W;
                    BuildInputPlanes(src, g, grid, planes);
                    RunTiles(planes, (int*)pu, units, (float*)pw, g.K, grid, gridBuffer);
                    if (pb == 0) FromGrid(gridBuffer, g.K, grid, (float*)py + i * g.K * g.P * g.Q, g.Q, 0, 0, 1, accumulate: false);
                    else FromGridWithBias(gridBuffer, g.K, grid, (float*)py + i * g.K * g.P * g.Q, (float*)pb, relu);
                }
            });
        }
    }

    /// <summary>Output channel blocks x grid tiles of one image.</summary>
    private static void RunTiles(float* planes, int* units, int unitCount, float* packed, int outChannels, Grid grid, float* gridBuffer)
    {
        for (int ob = 0; ob < Blocks(outChannels); ob++)
        {
            float* wb = packed + (long)ob * unitCount * KB;
            float* gb = gridBuffer + (long)ob * KB * grid.VPad;
            for (int v0 = 0; v0 < grid.VPad; v0 += Tile)
                ForwardTile(planes + v0, units, unitCount, wb, gb + v0, grid.VPad);
        }
    }

    /// <summary>Images handed out one at a time to free workers (each image's result is independent of who computed it).</summary>
    private static void ForImages(int n, Action<int, long> body) => CpuParallel.ForEachWithWorker(n, (worker, i) => body(worker, i));

    /// <summary>The input planes of one image: padded channels (stride 1) or padded polyphase components (stride 2).</summary>
    private static void BuildInputPlanes(float* src, ConvGeometry g, Grid grid, float* planes)
    {
        int h = g.H, w = g.W;
        if (g.R == 1)
        {
            // 1x1: the channel itself (stride 1) or its even rows and columns (stride 2), then zeros.
            for (int c = 0; c < g.C; c++)
            {
                float* plane = planes + (long)c * grid.PlaneStride;
                float* channel = src + (long)c * h * w;
                if (g.Stride == 1)
                {
                    new ReadOnlySpan<float>(channel, h * w).CopyTo(new Span<float>(plane, h * w));
                }
                else if (EvenOdd.Supported(w))
                {
                    // Even columns of the even rows, 16 at a time (a row of 8 spills 8 zeros into the next, written after it).
                    for (int i = 0; i < grid.Rows; i++)
                    {
                        float* srcRow = channel + (long)(2 * i) * w;
                        float* dst = plane + i * grid.Width;
                        for (int x0 = 0; x0 < w; x0 += 32)
                        {
                            EvenOdd.Split(srcRow + x0, w - x0, out var even, out _);
                            Vector512.Store(even, dst + x0 / 2);
                        }
                    }
                }
                else
                {
                    for (int i = 0; i < grid.Rows; i++)
                    {
                        float* srcRow = channel + (long)(2 * i) * w;
                        float* dst = plane + i * grid.Width;
                        for (int j = 0; j < grid.Cols; j++) dst[j] = srcRow[2 * j];
                    }
                }
                new Span<float>(plane + grid.V, grid.PlaneStride - grid.V).Clear();
            }
            return;
        }
        if (g.Stride == 1)
        {
            for (int c = 0; c < g.C; c++)
            {
                float* plane = planes + (long)c * grid.PlaneStride;
                new Span<float>(plane, grid.Width + 1).Clear();                  // top border row, left pad of row 1
                for (int r = 0; r < h; r++)
                {
                    float* row = plane + (r + 1) * grid.Width + 1;
                    new ReadOnlySpan<float>(src + ((long)c * h + r) * w, w).CopyTo(new Span<float>(row, w));
                    row[w] = 0f;                                                 // right pad of this row
                    row[w + 1] = 0f;                                             // left pad of the next row
                }
                int tail = (h + 1) * grid.Width + 1;
                new Span<float>(plane + tail, grid.PlaneStride - tail).Clear(); // bottom border and slack
            }
            return;
        }
        // Stride 2: component (a, b)[i][j] = x[2i + a][2j + b], stored at padded (i + 1, j + 1).
        int ho = h / 2, wo = w / 2;
        if (EvenOdd.Supported(w))
        {
            // Both column phases of a row at once; a row of 8 spills 8 zeros into the next padded row, filled after it.
            for (int c = 0; c < g.C; c++)
            for (int a = 0; a < 2; a++)
            {
                float* even = planes + (long)(c * 4 + a * 2) * grid.PlaneStride, odd = even + grid.PlaneStride;
                new Span<float>(even, 2 * grid.PlaneStride).Clear();
                for (int i = 0; i < ho; i++)
                {
                    float* srcRow = src + ((long)c * h + 2 * i + a) * w;
                    int at = (i + 1) * grid.Width + 1;
                    for (int x0 = 0; x0 < w; x0 += 32)
                    {
                        EvenOdd.Split(srcRow + x0, w - x0, out var e, out var o);
                        Vector512.Store(e, even + at + x0 / 2);
                        Vector512.Store(o, odd + at + x0 / 2);
                    }
                }
            }
            return;
        }
        for (int c = 0; c < g.C; c++)
        for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
        {
            float* plane = planes + (long)(c * 4 + a * 2 + b) * grid.PlaneStride;
            new Span<float>(plane, grid.PlaneStride).Clear();
            for (int i = 0; i < ho; i++)
            {
                float* srcRow = src + ((long)c * h + 2 * i + a) * w + b;
                float* dst = plane + (i + 1) * grid.Width + 1;
                for (int j = 0; j < wo; j++) dst[j] = srcRow[2 * j];
            }
        }
    }

    /// <summary>
    /// Writes the valid part of the grid rows into NCHW output. Output element (row, col) of
    /// channel c goes to dst[c][rowStep*row + rowOffset][colStep*col + colOffset] (steps of 2
    /// interleave the polyphase components of a stride-2 backward pass).
    /// </summary>
    private static void FromGrid(float* gridBuffer, int channels, Grid grid, float* dst, int dstWidth, int rowOffset, int colOffset, int step, bool accumulate)
    {
        int dstRows = grid.Rows * step;
        for (int c = 0; c < channels; c++)
        for (int r = 0; r < grid.Rows; r++)
        {
            float* from = gridBuffer + (long)c * grid.VPad + r * grid.Width;
            float* to = dst + ((long)c * dstRows + r * step + rowOffset) * dstWidth + colOffset;
            if (step == 1)
            {
                var f = new ReadOnlySpan<float>(from, grid.Cols);
                var t = new Span<float>(to, grid.Cols);
                if (accumulate) TensorPrimitives.Add(t, f, t);
                else f.CopyTo(t);
            }
            else if (accumulate)
            {
                for (int j = 0; j < grid.Cols; j++) to[j * step] += from[j];
            }
            else
            {
                for (int j = 0; j < grid.Cols; j++) to[j * step] = from[j];
            }
        }
    }

    /// <summary>The forward pass's output rows leaving the grid with the channel's bias added (and the ReLU), as AddChannelBias(Relu) computes them.</summary>
    private static void FromGridWithBias(float* gridBuffer, int channels, Grid grid, float* dst, float* bias, bool relu)
    {
        for (int c = 0; c < channels; c++)
        for (int r = 0; r < grid.Rows; r++)
        {
            float* from = gridBuffer + (long)c * grid.VPad + r * grid.Width;
            float* to = dst + ((long)c * grid.Rows + r) * grid.Cols;
            if (relu) Elementwise.Map(from, to, grid.Cols, new CpuBackend.ScaleShiftRelu(1f, bias[c]));
            else Elementwise.Map(from, to, grid.Cols, new CpuBackend.ScaleShift(1f, bias[c]));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ForwardTile(float* planes, int* units, int unitCount, float* wb, float* outGrid, int vpad)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default;
        Vector512<float> a40 = default, a41 = default, a42 = default, a50 = default, a51 = default, a52 = default;
        Vector512<float> a60 = default, a61 = default, a62 = default, a70 = default, a71 = default, a72 = default;
        for (int u = 0; u < unitCount; u++)
        {
            float* q = planes + units[u];
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

    // ------------------------------------------------------------------ backward data

    public void BackwardData(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        Prepare(g);
        if (g.Stride == 1 || g.R == 1) BackwardDataByCorrelation(dy, w, dx, g, accumulate);
        else BackwardDataStride2(dy, w, dx, g, accumulate);
    }

    /// <summary>
    /// Stride 1 (3x3 or 1x1): dx = corr(pad(dy), w') with w'[c][k][taps-1-t] = w[k][c][t] — the
    /// kernel transposed and rotated — on the same kind of grid. A 1x1 stride-2 convolution is the
    /// same over the output size, written to the even rows and columns of dx (the rest get nothing).
    /// </summary>
    private void BackwardDataByCorrelation(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        int taps = g.R * g.S;
        var swapped = new ConvGeometry(g.N, g.K, g.P, g.Q, g.C, g.R, g.S, 1, g.Padding);
        var grid = OutputGrid(swapped);
        int units = g.K * taps;
        int step = g.Stride;
        for (int k = 0; k < g.K; k++)
            for (int t = 0; t < taps; t++) _units[k * taps + t] = UnitOffset(swapped, grid, k, t);
        fixed (float* packed = _weights) fixed (int* unitOffsets = _units)
        {
            float* wp = CpuTensor.Ptr(w);
            for (int cb = 0; cb < Blocks(g.C); cb++)
            for (int k = 0; k < g.K; k++)
            for (int t = 0; t < taps; t++)
            for (int j = 0; j < KB; j++)
            {
                int c = cb * KB + j;
                packed[(((long)cb * g.K + k) * taps + t) * KB + j] = c < g.C ? wp[((long)k * g.C + c) * taps + (taps - 1 - t)] : 0f;
            }
            nint pdy = (nint)CpuTensor.Ptr(dy), pdx = (nint)CpuTensor.Ptr(dx), pw = (nint)packed, pu = (nint)unitOffsets;
            ForImages(g.N, (worker, i) =>
            {
                fixed (float* planes = _planes[worker]) fixed (float* gridBuffer = _grid[worker])
                {
                    float* dst = (float*)pdx + i * g.C * g.H * g.W;
                    BuildInputPlanes((float*)pdy + i * g.K * g.P * g.Q, swapped, grid, planes);
                    RunTiles(planes, (int*)pu, units, (float*)pw, g.C, grid, gridBuffer);
                    if (step > 1 && !accumulate) new Span<float>(dst, g.C * g.H * g.W).Clear();
                    FromGrid(gridBuffer, g.C, grid, dst, g.W, 0, 0, step, accumulate || step > 1);
                }
            });
        }
    }

    /// <summary>
    /// Stride 2: the polyphase component (a, b) of dx, dx[c][2i + a][2j + b], collects the taps
    /// whose row r satisfies 2*oh + r - 1 = 2i + a: a = 0 takes r = 1 (oh = i); a = 1 takes r = 0
    /// (oh = i + 1) and r = 2 (oh = i); likewise for columns. dy is laid on a grid of width
    /// W/2 + 1 with a zero last row and column, so "oh = i + 1" is offset +1 (+grid width).
    /// </summary>
    private void BackwardDataStride2(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        int ho = g.H / 2, wo = g.W / 2;
        var grid = Grid.For(ho, wo, wo + 1, ho + 1);
        (int Tap, int Shift)[][] byPhase = [[(1, 0)], [(0, 1), (2, 0)]];
        nint pdy = (nint)CpuTensor.Ptr(dy), pdx = (nint)CpuTensor.Ptr(dx);
        float* wp = CpuTensor.Ptr(w);
        // Units and packed weights of the four phases, one after another.
        var phaseUnits = new int[4];
        var phaseStart = new int[4];
        int total = 0;
        for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
        {
            int p = a * 2 + b;
            phaseStart[p] = total;
            phaseUnits[p] = g.K * byPhase[a].Length * byPhase[b].Length;
            total += phaseUnits[p];
        }
        if (_units.Length < total) _units = GC.AllocateUninitializedArray<int>(total, pinned: true);
        long need = (long)Blocks(g.C) * KB * total;
        if (_weights.Length < need) _weights = GC.AllocateUninitializedArray<float>((int)need, pinned: true);
        fixed (float* packed = _weights) fixed (int* unitOffsets = _units)
        {
            for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
            {
                int p = a * 2 + b, u = phaseStart[p], n = phaseUnits[p];
                float* pw = packed + (long)Blocks(g.C) * KB * phaseStart[p];
                int local = 0;
                for (int k = 0; k < g.K; k++)
                foreach (var (r, dr) in byPhase[a])
                foreach (var (s, ds) in byPhase[b])
                {
                    unitOffsets[u + local] = k * grid.PlaneStride + dr * grid.Width + ds;
                    for (int cb = 0; cb < Blocks(g.C); cb++)
                    for (int j = 0; j < KB; j++)
                    {
                        int c = cb * KB + j;
                        pw[((long)cb * n + local) * KB + j] = c < g.C ? wp[((long)k * g.C + c) * 9 + r * 3 + s] : 0f;
                    }
                    local++;
                }
            }
            nint pp = (nint)packed, pu = (nint)unitOffsets;
            ForImages(g.N, (worker, i) =>
            {
                fixed (float* planes = _planes[worker]) fixed (float* gridBuffer = _grid[worker])
                {
                    // dy of this image on the grid: row i at i*width, zero last column and row.
                    float* src = (float*)pdy + i * g.K * ho * wo;
                    for (int k = 0; k < g.K; k++)
                    {
                        float* plane = planes + (long)k * grid.PlaneStride;
                        for (int r = 0; r < ho; r++)
                        {
                            new ReadOnlySpan<float>(src + ((long)k * ho + r) * wo, wo).CopyTo(new Span<float>(plane + r * grid.Width, wo));
                            plane[r * grid.Width + wo] = 0f;
                        }
                        new Span<float>(plane + ho * grid.Width, grid.PlaneStride - ho * grid.Width).Clear();
                    }
                    float* dst = (float*)pdx + i * g.C * g.H * g.W;
                    for (int p = 0; p < 4; p++)
                    {
                        RunTiles(planes, (int*)pu + phaseStart[p], phaseUnits[p], (float*)pp + (long)Blocks(g.C) * KB * phaseStart[p], g.C, grid, gridBuffer);
                        FromGrid(gridBuffer, g.C, grid, dst, g.W, p / 2, p % 2, 2, accumulate);
                    }
                }
            });
        }
    }

    // ------------------------------------------------------------------ backward filter

    public void BackwardFilter(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        Prepare(g);
        var grid = OutputGrid(g);
        int n = g.N, c = g.C, k = g.K;
        int kBlocks = Blocks(k);
        int perBlock = FilterTilesPerBlock(g);
        int tiles = kBlocks * perBlock;
        int tileFloats = KB * 3 * 16;
        int group = GroupSize(grid);
        int phases = PhasesPerChannel(g);
        long inputStride = (long)c * phases * grid.PlaneStride;
        long gridStride = (long)kBlocks * KB * grid.VPad;
        int workers = Math.Max(1, Math.Min(CpuParallel.Workers, n));
        nint px = (nint)CpuTensor.Ptr(x), pdy = (nint)CpuTensor.Ptr(dy);
        CpuParallel.For(workers, worker =>
        {
            long start = (long)n * worker / workers, end = (long)n * (worker + 1) / workers;
            var planePointers = stackalloc float*[3];
            fixed (float* planes = _planes[worker]) fixed (float* gridBuffer = _grid[worker]) fixed (float* acc = _acc[worker])
            {
                new Span<float>(acc, tiles * tileFloats).Clear();
                for (long first = start; first < end; first += group)
                {
                    int count = (int)Math.Min(group, end - first);
                    for (int m = 0; m < count; m++)
                    {
                        BuildInputPlanes((float*)px + (first + m) * c * g.H * g.W, g, grid, planes + m * inputStride);
                        ToGrid((float*)pdy + (first + m) * k * g.P * g.Q, k, kBlocks * KB, grid, gridBuffer + m * gridStride);
                    }
                    for (int kb = 0; kb < kBlocks; kb++)
                    for (int t = 0; t < perBlock; t++)
                    {
                        float* tile = acc + (long)(kb * perBlock + t) * tileFloats;
                        // 3x3: tile t = (channel, kernel row), its 3 columns; 1x1: tile t = channels 3t..3t+2 (repeating the last).
                        for (int s = 0; s < 3; s++)
                            planePointers[s] = planes + (g.R == 3 ? UnitOffset(g, grid, t / 3, (t % 3) * 3 + s) : UnitOffset(g, grid, Math.Min(3 * t + s, c - 1), 0));
                        FilterTile(gridBuffer + (long)kb * KB * grid.VPad, grid.VPad, planePointers, tile, count, inputStride, gridStride);
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
            for (int t = 0; t < perBlock; t++)
            {
                float* tile = acc + (long)(kb * perBlock + t) * tileFloats;
                for (int j = 0; j < KB; j++)
                {
                    int o = kb * KB + j;
                    if (o >= k) break;
                    for (int s = 0; s < 3; s++)
                    {
                        float sum = Vector512.Sum(Vector512.Load(tile + (j * 3 + s) * 16));
                        if (g.R == 3) dwp[((long)o * c + t / 3) * 9 + (t % 3) * 3 + s] += sum;
                        else if (3 * t + s < c) dwp[(long)o * c + 3 * t + s] += sum;
                    }
                }
            }
        }
    }

    /// <summary>dy of one image onto the grid: each row of valid values followed by zeros, zero channels up to the padded count.</summary>
    private static void ToGrid(float* src, int channels, int paddedChannels, Grid grid, float* target)
    {
        for (int c = 0; c < paddedChannels; c++)
        {
            float* plane = target + (long)c * grid.VPad;
            if (c >= channels)
            {
                new Span<float>(plane, grid.VPad).Clear();
                continue;
            }
            for (int r = 0; r < grid.Rows; r++)
            {
                float* row = plane + r * grid.Width;
                new ReadOnlySpan<float>(src + ((long)c * grid.Rows + r) * grid.Cols, grid.Cols).CopyTo(new Span<float>(row, grid.Cols));
                for (int j = grid.Cols; j < grid.Width; j++) row[j] = 0f;
            }
            new Span<float>(plane + grid.V, grid.VPad - grid.V).Clear();
        }
    }

    /// <summary>
    /// acc[k][s] += sum over the grid of dy[k][v] * input_s[v], for 8 output channels and the 3
    /// taps of one kernel row (input_s = the plane and offset tap s reads), over a group of images.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void FilterTile(float* dyGrid, int vpad, float** inputs, float* acc, int images, long inputStride, long gridStride)
    {
        var a00 = Vector512.Load(acc + 0 * 16); var a01 = Vector512.Load(acc + 1 * 16); var a02 = Vector512.Load(acc + 2 * 16);
        var a10 = Vector512.Load(acc + 3 * 16); var a11 = Vector512.Load(acc + 4 * 16); var a12 = Vector512.Load(acc + 5 * 16);
        var a20 = Vector512.Load(acc + 6 * 16); var a21 = Vector512.Load(acc + 7 * 16); var a22 = Vector512.Load(acc + 8 * 16);
        var a30 = Vector512.Load(acc + 9 * 16); var a31 = Vector512.Load(acc + 10 * 16); var a32 = Vector512.Load(acc + 11 * 16);
        var a40 = Vector512.Load(acc + 12 * 16); var a41 = Vector512.Load(acc + 13 * 16); var a42 = Vector512.Load(acc + 14 * 16);
        var a50 = Vector512.Load(acc + 15 * 16); var a51 = Vector512.Load(acc + 16 * 16); var a52 = Vector512.Load(acc + 17 * 16);
        var a60 = Vector512.Load(acc + 18 * 16); var a61 = Vector512.Load(acc + 19 * 16); var a62 = Vector512.Load(acc + 20 * 16);
        var a70 = Vector512.Load(acc + 21 * 16); var a71 = Vector512.Load(acc + 22 * 16); var a72 = Vector512.Load(acc + 23 * 16);
        for (int m = 0; m < images; m++)
        {
            float* p0 = inputs[0] + m * inputStride, p1 = inputs[1] + m * inputStride, p2 = inputs[2] + m * inputStride;
            float* dg = dyGrid + m * gridStride;
            for (int v = 0; v < vpad; v += 16)
            {
                var x0 = Vector512.Load(p0 + v);
                var x1 = Vector512.Load(p1 + v);
                var x2 = Vector512.Load(p2 + v);
                float* d = dg + v;
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
