using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace CudaSwa.Cpu;

/// <summary>
/// One Winograd tile size F(m x m, 3 x 3): the m x m outputs of a 3x3 correlation computed from an
/// alpha x alpha input tile (alpha = m + 2) as y = A^T [(G g G^T) ⊙ (B^T d B)] A, with alpha^2
/// multiplications per tile and channel pair instead of 9 m^2.
///
/// The 1D transforms below work on 16 tiles at once (one Vector512 lane per tile); a 2D transform
/// is a 1D transform of the columns and then of the rows. The float64 matrices serve the filter
/// transforms (once per weight version) and the filter gradient's final transform (once per call),
/// and the tests check that the vector forms compute exactly these matrices.
/// Points 0, ±1 (and ±2 for m = 4) and infinity, as in Lavin and Gray, "Fast Algorithms for
/// Convolutional Neural Networks" (2016).
/// </summary>
internal unsafe interface IWinogradTile
{
    /// <summary>Outputs per tile side.</summary>
    static abstract int M { get; }
    /// <summary>Input tile side, M + 2.</summary>
    static abstract int Alpha { get; }
    /// <summary>B^T, alpha x alpha.</summary>
    static abstract double[,] BT { get; }
    /// <summary>G, alpha x 3.</summary>
    static abstract double[,] G { get; }
    /// <summary>A^T, M x alpha.</summary>
    static abstract double[,] AT { get; }
    /// <summary>o[i*os] = Σ_j B^T[i, j] d[j*ds]: the input transform along one axis.</summary>
    static abstract void Input(Vector512<float>* d, int ds, Vector512<float>* o, int os);
    /// <summary>o[i*os] = Σ_j A^T[i, j] m[j*ms]: the output transform along one axis.</summary>
    static abstract void Output(Vector512<float>* m, int ms, Vector512<float>* o, int os);
    /// <summary>o[j*os] = Σ_i A^T[i, j] y[i*ys]: an output gradient taken into the transformed domain (its adjoint).</summary>
    static abstract void OutputGradient(Vector512<float>* y, int ys, Vector512<float>* o, int os);
    /// <summary>dst[e*stride] = (B^T d B)[e] for 16 tiles, input element e = i*alpha + j of each at src + offsets[e].</summary>
    static abstract void InputTile(float* src, int* offsets, float* dst, long stride);
    /// <summary>dst[(i*m + j)*dstStride] = (A^T M A)[i, j] for 16 tiles, M[e] at src + e*srcStride.</summary>
    static abstract void OutputTile(float* src, long srcStride, float* dst, long dstStride);
}

/// <summary>The 2D transforms as two passes of the 1D ones through a small stack buffer: the form every tile size has.</summary>
internal static unsafe class WinogradTiles
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InputTile<T>(float* src, int* offsets, float* dst, long stride) where T : IWinogradTile
    {
        int alpha = T.Alpha, xi = alpha * alpha;
        var d = stackalloc Vector512<float>[36];
        var t = stackalloc Vector512<float>[36];
        for (int e = 0; e < xi; e++) d[e] = Vector512.Load(src + offsets[e]);
        for (int j = 0; j < alpha; j++) T.Input(d + j, alpha, t + j, alpha);          // columns: t[ξ1][j]
        for (int i = 0; i < alpha; i++) T.Input(t + i * alpha, 1, d + i * alpha, 1);  // rows: d[ξ1][ξ2]
        for (int e = 0; e < xi; e++) Vector512.Store(d[e], dst + e * stride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputTile<T>(float* src, long srcStride, float* dst, long dstStride) where T : IWinogradTile
    {
        int alpha = T.Alpha, m = T.M, xi = alpha * alpha;
        var d = stackalloc Vector512<float>[36];
        var t = stackalloc Vector512<float>[24];
        for (int e = 0; e < xi; e++) d[e] = Vector512.Load(src + e * srcStride);
        for (int j = 0; j < alpha; j++) T.Output(d + j, alpha, t + j, alpha);      // columns: t[i][ξ2], i < m
        for (int i = 0; i < m; i++) T.Output(t + i * alpha, 1, d + i * m, 1);     // rows: d[i][j], j < m
        for (int e = 0; e < m * m; e++) Vector512.Store(d[e], dst + e * dstStride);
    }
}

/// <summary>F(2x2, 3x3): 16 products per tile for 4 outputs (2.25x fewer than direct); rounding as direct.</summary>
internal readonly unsafe struct WinogradF2 : IWinogradTile
{
    public static int M => 2;
    public static int Alpha => 4;
    public static double[,] BT { get; } = { { 1, 0, -1, 0 }, { 0, 1, 1, 0 }, { 0, -1, 1, 0 }, { 0, 1, 0, -1 } };
    public static double[,] G { get; } = { { 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 }, { 0, 0, 1 } };
    public static double[,] AT { get; } = { { 1, 1, 1, 0 }, { 0, 1, -1, -1 } };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Input(Vector512<float>* d, int ds, Vector512<float>* o, int os)
    {
        var d0 = d[0]; var d1 = d[ds]; var d2 = d[2 * ds]; var d3 = d[3 * ds];
        o[0] = d0 - d2;
        o[os] = d1 + d2;
        o[2 * os] = d2 - d1;
        o[3 * os] = d1 - d3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Output(Vector512<float>* m, int ms, Vector512<float>* o, int os)
    {
        var m1 = m[ms]; var m2 = m[2 * ms];
        o[0] = m[0] + m1 + m2;
        o[os] = m1 - m2 - m[3 * ms];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputGradient(Vector512<float>* y, int ys, Vector512<float>* o, int os)
    {
        var y0 = y[0]; var y1 = y[ys];
        o[0] = y0;
        o[os] = y0 + y1;
        o[2 * os] = y0 - y1;
        o[3 * os] = -y1;
    }

    /// <summary>Unrolled: 16 loads, 32 additions, 16 stores, all in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InputTile(float* src, int* offsets, float* dst, long stride)
    {
        // Columns: t[a][j] = (B^T d)[a][j], for each of the 4 columns j.
        Column(src, offsets, 0, out var t00, out var t10, out var t20, out var t30);
        Column(src, offsets, 1, out var t01, out var t11, out var t21, out var t31);
        Column(src, offsets, 2, out var t02, out var t12, out var t22, out var t32);
        Column(src, offsets, 3, out var t03, out var t13, out var t23, out var t33);
        Row(t00, t01, t02, t03, dst, stride);
        Row(t10, t11, t12, t13, dst + 4 * stride, stride);
        Row(t20, t21, t22, t23, dst + 8 * stride, stride);
        Row(t30, t31, t32, t33, dst + 12 * stride, stride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Column(float* src, int* offsets, int j, out Vector512<float> o0, out Vector512<float> o1, out Vector512<float> o2, out Vector512<float> o3)
    {
        var d0 = Vector512.Load(src + offsets[j]); var d1 = Vector512.Load(src + offsets[4 + j]);
        var d2 = Vector512.Load(src + offsets[8 + j]); var d3 = Vector512.Load(src + offsets[12 + j]);
        o0 = d0 - d2; o1 = d1 + d2; o2 = d2 - d1; o3 = d1 - d3;
    }

    /// <summary>B^T of one row of 4 (16 tiles each), stored at dst, dst + stride, …: the input transform's second pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Row(Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3, float* dst, long stride)
    {
        Vector512.Store(d0 - d2, dst);
        Vector512.Store(d1 + d2, dst + stride);
        Vector512.Store(d2 - d1, dst + 2 * stride);
        Vector512.Store(d1 - d3, dst + 3 * stride);
    }

    /// <summary>Unrolled: 16 loads, 24 additions, 4 stores.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputTile(float* src, long srcStride, float* dst, long dstStride)
    {
        // Columns j: u0j = m0j + m1j + m2j, u1j = m1j - m2j - m3j.
        OutColumn(src, srcStride, 0, out var u00, out var u10);
        OutColumn(src, srcStride, 1, out var u01, out var u11);
        OutColumn(src, srcStride, 2, out var u02, out var u12);
        OutColumn(src, srcStride, 3, out var u03, out var u13);
        Vector512.Store(u00 + u01 + u02, dst);
        Vector512.Store(u01 - u02 - u03, dst + dstStride);
        Vector512.Store(u10 + u11 + u12, dst + 2 * dstStride);
        Vector512.Store(u11 - u12 - u13, dst + 3 * dstStride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutColumn(float* src, long stride, int j, out Vector512<float> u0, out Vector512<float> u1)
    {
        var m0 = Vector512.Load(src + j * stride); var m1 = Vector512.Load(src + (4 + j) * stride);
        var m2 = Vector512.Load(src + (8 + j) * stride); var m3 = Vector512.Load(src + (12 + j) * stride);
        u0 = m0 + m1 + m2; u1 = m1 - m2 - m3;
    }
}

/// <summary>F(4x4, 3x3): 36 products per tile for 16 outputs (4x fewer than direct); its transforms scale by up to 8, so it rounds more.</summary>
internal readonly unsafe struct WinogradF4 : IWinogradTile
{
    public static int M => 4;
    public static int Alpha => 6;
    public static double[,] BT { get; } =
    {
        { 4, 0, -5, 0, 1, 0 },
        { 0, -4, -4, 1, 1, 0 },
        { 0, 4, -4, -1, 1, 0 },
        { 0, -2, -1, 2, 1, 0 },
        { 0, 2, -1, -2, 1, 0 },
        { 0, 4, 0, -5, 0, 1 },
    };
    public static double[,] G { get; } =
    {
        { 1.0 / 4, 0, 0 },
        { -1.0 / 6, -1.0 / 6, -1.0 / 6 },
        { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
        { 1.0 / 24, 1.0 / 12, 1.0 / 6 },
        { 1.0 / 24, -1.0 / 12, 1.0 / 6 },
        { 0, 0, 1 },
    };
    public static double[,] AT { get; } =
    {
        { 1, 1, 1, 1, 1, 0 },
        { 0, 1, -1, 2, -2, 0 },
        { 0, 1, 1, 4, 4, 0 },
        { 0, 1, -1, 8, -8, 1 },
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Input(Vector512<float>* d, int ds, Vector512<float>* o, int os)
    {
        var d0 = d[0]; var d1 = d[ds]; var d2 = d[2 * ds]; var d3 = d[3 * ds]; var d4 = d[4 * ds]; var d5 = d[5 * ds];
        var four = Vector512.Create(4f); var five = Vector512.Create(5f); var two = Vector512.Create(2f);
        var t1 = d4 - four * d2;          // d4 - 4 d2
        var t2 = d3 - four * d1;          // d3 - 4 d1
        var t3 = d4 - d2;
        var t4 = two * (d3 - d1);
        o[0] = Vector512.FusedMultiplyAdd(four, d0, d4) - five * d2;
        o[os] = t1 + t2;
        o[2 * os] = t1 - t2;
        o[3 * os] = t3 + t4;
        o[4 * os] = t3 - t4;
        o[5 * os] = Vector512.FusedMultiplyAdd(four, d1, d5) - five * d3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Output(Vector512<float>* m, int ms, Vector512<float>* o, int os)
    {
        var m1 = m[ms]; var m2 = m[2 * ms]; var m3 = m[3 * ms]; var m4 = m[4 * ms];
        var s12 = m1 + m2; var d12 = m1 - m2; var s34 = m3 + m4; var d34 = m3 - m4;
        var two = Vector512.Create(2f); var four = Vector512.Create(4f); var eight = Vector512.Create(8f);
        o[0] = m[0] + s12 + s34;
        o[os] = Vector512.FusedMultiplyAdd(two, d34, d12);
        o[2 * os] = Vector512.FusedMultiplyAdd(four, s34, s12);
        o[3 * os] = Vector512.FusedMultiplyAdd(eight, d34, d12) + m[5 * ms];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputGradient(Vector512<float>* y, int ys, Vector512<float>* o, int os)
    {
        var y0 = y[0]; var y1 = y[ys]; var y2 = y[2 * ys]; var y3 = y[3 * ys];
        var two = Vector512.Create(2f); var four = Vector512.Create(4f); var eight = Vector512.Create(8f);
        var e1 = y0 + y2; var o1 = y1 + y3;
        var e2 = Vector512.FusedMultiplyAdd(four, y2, y0); var o2 = Vector512.FusedMultiplyAdd(eight, y3, two * y1);
        o[0] = y0;
        o[os] = e1 + o1;
        o[2 * os] = e1 - o1;
        o[3 * os] = e2 + o2;
        o[4 * os] = e2 - o2;
        o[5 * os] = y3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InputTile(float* src, int* offsets, float* dst, long stride) => WinogradTiles.InputTile<WinogradF4>(src, offsets, dst, stride);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputTile(float* src, long srcStride, float* dst, long dstStride) => WinogradTiles.OutputTile<WinogradF4>(src, srcStride, dst, dstStride);
}
