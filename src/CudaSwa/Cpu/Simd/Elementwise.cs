using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Workers;

namespace CudaSwa.Cpu.Simd;

/// <summary>
/// The one elementwise driver: for each arity, the loop over [0, n) at the current
/// <see cref="Simd.Width"/> (main loop of whole vectors, then a scalar tail) and its form split
/// across the worker pool. Ops are operator structs (<see cref="IUnaryOperator"/> ...); an output
/// may alias an input (in-place updates), since each position is loaded before it is stored.
/// </summary>
internal static unsafe class Elementwise
{
    /// <summary>Below this many elements per worker a pass runs on one thread (a dispatch costs more than it saves).</summary>
    public const long MinChunk = 1 << 15;

    // ------------------------------------------------------------------ one thread

    public static void Map<TOp>(float* x, float* y, long n, TOp op) where TOp : struct, IUnaryOperator
    {
        long i = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512:
                for (; i + 16 <= n; i += 16) op.Invoke(Vector512.Load(x + i)).Store(y + i);
                break;
            case SimdWidth.Vector256:
                for (; i + 8 <= n; i += 8) op.Invoke(Vector256.Load(x + i)).Store(y + i);
                break;
        }
        for (; i < n; i++) y[i] = op.Invoke(x[i]);
    }

    public static void Map<TOp>(float* a, float* b, float* y, long n, TOp op) where TOp : struct, IBinaryOperator
    {
        long i = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512:
                for (; i + 16 <= n; i += 16) op.Invoke(Vector512.Load(a + i), Vector512.Load(b + i)).Store(y + i);
                break;
            case SimdWidth.Vector256:
                for (; i + 8 <= n; i += 8) op.Invoke(Vector256.Load(a + i), Vector256.Load(b + i)).Store(y + i);
                break;
        }
        for (; i < n; i++) y[i] = op.Invoke(a[i], b[i]);
    }

    public static void Map<TOp>(float* a, float* b, float* c, float* y, long n, TOp op) where TOp : struct, ITernaryOperator
    {
        long i = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512:
                for (; i + 16 <= n; i += 16) op.Invoke(Vector512.Load(a + i), Vector512.Load(b + i), Vector512.Load(c + i)).Store(y + i);
                break;
            case SimdWidth.Vector256:
                for (; i + 8 <= n; i += 8) op.Invoke(Vector256.Load(a + i), Vector256.Load(b + i), Vector256.Load(c + i)).Store(y + i);
                break;
        }
        for (; i < n; i++) y[i] = op.Invoke(a[i], b[i], c[i]);
    }

    public static void Map<TOp>(float* a, float* b, float* c, float* d, float* y, long n, TOp op) where TOp : struct, IQuaternaryOperator
    {
        long i = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512:
                for (; i + 16 <= n; i += 16) op.Invoke(Vector512.Load(a + i), Vector512.Load(b + i), Vector512.Load(c + i), Vector512.Load(d + i)).Store(y + i);
                break;
            case SimdWidth.Vector256:
                for (; i + 8 <= n; i += 8) op.Invoke(Vector256.Load(a + i), Vector256.Load(b + i), Vector256.Load(c + i), Vector256.Load(d + i)).Store(y + i);
                break;
        }
        for (; i < n; i++) y[i] = op.Invoke(a[i], b[i], c[i], d[i]);
    }

    /// <summary>(s, t) = op(s, t, x) in place over both state streams.</summary>
    public static void Update<TOp>(float* s, float* t, float* x, long n, TOp op) where TOp : struct, IStateOperator
    {
        long i = 0;
        switch (Simd.Width)
        {
            case SimdWidth.Vector512:
                for (; i + 16 <= n; i += 16)
                {
                    var (si, ti) = op.Invoke(Vector512.Load(s + i), Vector512.Load(t + i), Vector512.Load(x + i));
                    si.Store(s + i);
                    ti.Store(t + i);
                }
                break;
            case SimdWidth.Vector256:
                for (; i + 8 <= n; i += 8)
                {
                    var (si, ti) = op.Invoke(Vector256.Load(s + i), Vector256.Load(t + i), Vector256.Load(x + i));
                    si.Store(s + i);
                    ti.Store(t + i);
                }
                break;
        }
        for (; i < n; i++) (s[i], t[i]) = op.Invoke(s[i], t[i], x[i]);
    }

    /// <summary>
    /// (s, t, y) = op(s, t, x): both states in place and y written in one loop; with
    /// <paramref name="streaming"/> y goes out with non-temporal stores (no read for ownership, no
    /// cache pollution: for an output larger than the caches and not read again soon, e.g. SWAG's
    /// deviation column). Same values either way.
    /// </summary>
    public static void Update<TOp>(float* s, float* t, float* x, float* y, long n, TOp op, bool streaming) where TOp : struct, IStateOutputOperator
    {
        long i = 0;
        int bytes = Simd.Width == SimdWidth.Vector512 ? 64 : Simd.Width == SimdWidth.Vector256 ? 32 : 0;
        streaming &= bytes != 0 && n >= 4 * bytes;
        if (streaming)
            for (; i < n && ((nint)(y + i) & (bytes - 1)) != 0; i++) (s[i], t[i], y[i]) = op.Invoke(s[i], t[i], x[i]); // up to the first aligned output
        switch (Simd.Width)
        {
            case SimdWidth.Vector512:
                for (; i + 16 <= n; i += 16)
                {
                    var (si, ti, yi) = op.Invoke(Vector512.Load(s + i), Vector512.Load(t + i), Vector512.Load(x + i));
                    si.Store(s + i);
                    ti.Store(t + i);
                    if (streaming) yi.StoreAlignedNonTemporal(y + i);
                    else yi.Store(y + i);
                }
                break;
            case SimdWidth.Vector256:
                for (; i + 8 <= n; i += 8)
                {
                    var (si, ti, yi) = op.Invoke(Vector256.Load(s + i), Vector256.Load(t + i), Vector256.Load(x + i));
                    si.Store(s + i);
                    ti.Store(t + i);
                    if (streaming) yi.StoreAlignedNonTemporal(y + i);
                    else yi.Store(y + i);
                }
                break;
        }
        for (; i < n; i++) (s[i], t[i], y[i]) = op.Invoke(s[i], t[i], x[i]);
        if (streaming && System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.StoreFence(); // streaming stores are weakly ordered
    }

    /// <summary>y = op(x), or y += op(x) when <paramref name="accumulate"/>.</summary>
    public static void MapInto<TOp>(float* x, float* y, long n, TOp op, bool accumulate) where TOp : struct, IUnaryOperator
    {
        if (accumulate) Map(y, x, y, n, new Accumulating<TOp>(op));
        else Map(x, y, n, op);
    }

    /// <summary>y = op(a, b), or y += op(a, b).</summary>
    public static void MapInto<TOp>(float* a, float* b, float* y, long n, TOp op, bool accumulate) where TOp : struct, IBinaryOperator
    {
        if (accumulate) Map(y, a, b, y, n, new AccumulatingBinary<TOp>(op));
        else Map(a, b, y, n, op);
    }

    /// <summary>y = op(a, b, c), or y += op(a, b, c).</summary>
    public static void MapInto<TOp>(float* a, float* b, float* c, float* y, long n, TOp op, bool accumulate) where TOp : struct, ITernaryOperator
    {
        if (accumulate) Map(y, a, b, c, y, n, new AccumulatingTernary<TOp>(op));
        else Map(a, b, c, y, n, op);
    }

    // ------------------------------------------------------------------ across the workers

    /// <summary>
    /// Splits [0, n) into one contiguous range per worker (vector-aligned boundaries, at least
    /// <see cref="MinChunk"/> each) and runs <paramref name="body"/>(start, length) on each; a
    /// range's result does not depend on where the boundaries fall, so neither does the pass's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Split(long n, Action<long, long> body) => CpuParallel.ForRange(n, MinChunk, (s, e) => body(s, e - s));

    public static void ParallelMap<TOp>(float* x, float* y, long n, TOp op) where TOp : struct, IUnaryOperator
    {
        nint px = (nint)x, py = (nint)y;
        Split(n, (s, len) => Map((float*)px + s, (float*)py + s, len, op));
    }

    public static void ParallelMap<TOp>(float* a, float* b, float* y, long n, TOp op) where TOp : struct, IBinaryOperator
    {
        nint pa = (nint)a, pb = (nint)b, py = (nint)y;
        Split(n, (s, len) => Map((float*)pa + s, (float*)pb + s, (float*)py + s, len, op));
    }

    public static void ParallelMapInto<TOp>(float* x, float* y, long n, TOp op, bool accumulate) where TOp : struct, IUnaryOperator
    {
        nint px = (nint)x, py = (nint)y;
        Split(n, (s, len) => MapInto((float*)px + s, (float*)py + s, len, op, accumulate));
    }

    public static void ParallelMapInto<TOp>(float* a, float* b, float* y, long n, TOp op, bool accumulate) where TOp : struct, IBinaryOperator
    {
        nint pa = (nint)a, pb = (nint)b, py = (nint)y;
        Split(n, (s, len) => MapInto((float*)pa + s, (float*)pb + s, (float*)py + s, len, op, accumulate));
    }

    public static void ParallelUpdate<TOp>(float* s, float* t, float* x, long n, TOp op) where TOp : struct, IStateOperator
    {
        nint ps = (nint)s, pt = (nint)t, px = (nint)x;
        Split(n, (start, len) => Update((float*)ps + start, (float*)pt + start, (float*)px + start, len, op));
    }
}
