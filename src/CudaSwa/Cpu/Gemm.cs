using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Workers;

namespace CudaSwa.Cpu;

/// <summary>
/// Single-precision matrix multiply, row-major: C = alpha * op(A) * op(B) + beta * C, where
/// op(A) is m x k and op(B) is k x n. Blocked in the BLIS/GotoBLAS way: panels of B (k x NR)
/// and A (MR x k) are packed into contiguous scratch so the register micro-kernel streams
/// through memory; the micro-kernel keeps an MR x NR tile of C in vector registers and issues
/// fused multiply-adds. Vector512 (MR 8 x NR 32) where the CPU has AVX-512, Vector256
/// (6 x 16) otherwise, a scalar kernel as the last resort. beta = 0 never reads C, so C may
/// hold garbage (or a NaN poison) on entry.
///
/// One call runs on the calling thread; callers parallelise over independent problems (images
/// of a batch) or use <see cref="MultiplyParallel"/>, which splits columns.
/// </summary>
internal static unsafe class Gemm
{
    private const int KC = 256;   // depth of one packed block: B micro-panel (KC x NR) stays in L1
    private const int MC = 96;    // rows of A packed at once (multiple of every MR)
    private const int NC = 2048;  // columns of B packed at once (multiple of every NR)

    public enum Kernel { Avx512, Avx256, Scalar }

    /// <summary>The best micro-kernel this CPU runs.</summary>
    public static readonly Kernel Best =
        Vector512.IsHardwareAccelerated ? Kernel.Avx512 :
        Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported ? Kernel.Avx256 :
        Kernel.Scalar;

    private static Kernel Selected = Best;
    private static int MR = 8, NR = 32;

    static Gemm() => Use(Best);

    /// <summary>
    /// Switches the micro-kernel (tests run every kernel this CPU supports, so the narrower ones
    /// are checked even on an AVX-512 machine). Not thread-safe against running products.
    /// </summary>
    internal static void Use(Kernel kernel)
    {
        if (kernel == Kernel.Avx512 && !Vector512.IsHardwareAccelerated) throw new PlatformNotSupportedException("This CPU has no AVX-512.");
        if (kernel == Kernel.Avx256 && !(Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported)) throw new PlatformNotSupportedException("This CPU has no AVX2+FMA.");
        Selected = kernel;
        (MR, NR) = kernel switch { Kernel.Avx512 => (8, 32), Kernel.Avx256 => (6, 16), _ => (4, 4) };
    }

    /// <summary>Which micro-kernel this process uses, for logs and `cudaswa info`.</summary>
    public static string KernelName => Selected switch
    {
        Kernel.Avx512 => "Vector512 FMA 8x32",
        Kernel.Avx256 => "Vector256 FMA 6x16",
        _ => "scalar 4x4",
    };

    [ThreadStatic] private static float[]? t_packA;
    [ThreadStatic] private static float[]? t_packB;

    public static void Multiply(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        if (m == 0 || n == 0) return;
        CheckOperand(a, transA ? k : m, transA ? m : k, lda, "A");
        CheckOperand(b, transB ? n : k, transB ? k : n, ldb, "B");
        CheckOperand(c, m, n, ldc, "C");
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            Multiply(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
    }

    /// <summary>Splits the columns of C across the thread pool (for one large product, e.g. a linear layer).</summary>
    public static void MultiplyParallel(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        int workers = CpuParallel.Workers;
        long work = (long)m * n * k;
        if (workers == 1 || work < 1 << 20 || n < 2 * NR)
        {
            Multiply(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        int chunk = (n + workers - 1) / workers;
        chunk = (chunk + NR - 1) / NR * NR;
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        CpuParallel.For(workers, w =>
        {
            int j0 = w * chunk;
            int cols = Math.Min(chunk, n - j0);
            if (cols <= 0) return;
            float* bj = transB ? (float*)pb + (long)j0 * ldb : (float*)pb + j0;
            Multiply(transA, transB, m, cols, k, alpha, (float*)pa, lda, bj, ldb, beta, (float*)pc + j0, ldc);
        });
    }

    public static void Multiply(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        int mr = MR, nr = NR;
        float[] packA = t_packA ??= GC.AllocateUninitializedArray<float>(MC * KC, pinned: true);
        float[] packB = t_packB ??= GC.AllocateUninitializedArray<float>(KC * NC, pinned: true);
        float* tile = stackalloc float[8 * 32];
        fixed (float* ap = packA) fixed (float* bp = packB)
        {
            for (int jc = 0; jc < n; jc += NC)
            {
                int nc = Math.Min(NC, n - jc);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    float betaBlock = pc == 0 ? beta : 1f;
                    PackB(transB, b, ldb, pc, jc, kc, nc, nr, bp);
                    for (int ic = 0; ic < m; ic += MC)
                    {
                        int mc = Math.Min(MC, m - ic);
                        PackA(transA, a, lda, ic, pc, mc, kc, mr, alpha, ap);
                        for (int jr = 0; jr < nc; jr += nr)
                        {
                            int nrEff = Math.Min(nr, nc - jr);
                            float* bPanel = bp + (long)jr * kc;
                            for (int ir = 0; ir < mc; ir += mr)
                            {
                                int mrEff = Math.Min(mr, mc - ir);
                                float* aPanel = ap + (long)ir * kc;
                                float* cTile = c + (long)(ic + ir) * ldc + jc + jr;
                                if (mrEff == mr && nrEff == nr)
                                {
                                    RunKernel(kc, aPanel, bPanel, cTile, ldc, betaBlock);
                                }
                                else
                                {
                                    RunKernel(kc, aPanel, bPanel, tile, nr, 0f);
                                    for (int i = 0; i < mrEff; i++)
                                    for (int j = 0; j < nrEff; j++)
                                    {
                                        float* dst = cTile + (long)i * ldc + j;
                                        float v = tile[i * nr + j];
                                        *dst = betaBlock == 0 ? v : betaBlock == 1 ? *dst + v : betaBlock * *dst + v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static void ScaleC(int m, int n, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + (long)i * ldc, n);
            if (beta == 0) row.Clear();
            else if (beta != 1) System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RunKernel(int kc, float* a, float* b, float* c, int ldc, float beta)
    {
        switch (Selected)
        {
            case Kernel.Avx512: Kernel8x32(kc, a, b, c, ldc, beta); break;
            case Kernel.Avx256: Kernel6x16(kc, a, b, c, ldc, beta); break;
            default: KernelScalar(kc, a, b, c, ldc, beta); break;
        }
    }

    /// <summary>Packs rows ic..ic+mc, depth pc..pc+kc of alpha*op(A) into MR-row panels (p-major inside a panel), zero-padded.</summary>
    private static void PackA(bool transA, float* a, int lda, int ic, int pc, int mc, int kc, int mr, float alpha, float* dst)
    {
        for (int ir = 0; ir < mc; ir += mr)
        {
            int rows = Math.Min(mr, mc - ir);
            float* panel = dst + (long)ir * kc;
            if (!transA)
            {
                // op(A)[i,p] = A[i*lda + p]: read each row contiguously, write with stride mr.
                for (int i = 0; i < rows; i++)
                {
                    float* src = a + (long)(ic + ir + i) * lda + pc;
                    for (int p = 0; p < kc; p++) panel[p * mr + i] = alpha * src[p];
                }
                for (int i = rows; i < mr; i++)
                    for (int p = 0; p < kc; p++) panel[p * mr + i] = 0;
            }
            else
            {
                // op(A)[i,p] = A[p*lda + i]: mr contiguous values per depth step.
                for (int p = 0; p < kc; p++)
                {
                    float* src = a + (long)(pc + p) * lda + ic + ir;
                    float* d = panel + p * mr;
                    int i = 0;
                    for (; i < rows; i++) d[i] = alpha * src[i];
                    for (; i < mr; i++) d[i] = 0;
                }
            }
        }
    }

    /// <summary>Packs depth pc..pc+kc, columns jc..jc+nc of op(B) into NR-column panels (p-major inside a panel), zero-padded.</summary>
    private static void PackB(bool transB, float* b, int ldb, int pc, int jc, int kc, int nc, int nr, float* dst)
    {
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
            float* panel = dst + (long)jr * kc;
            if (!transB)
            {
                // op(B)[p,j] = B[p*ldb + j]: nr contiguous values per depth step.
                for (int p = 0; p < kc; p++)
                {
                    float* src = b + (long)(pc + p) * ldb + jc + jr;
                    float* d = panel + p * nr;
                    if (cols == nr)
                    {
                        new ReadOnlySpan<float>(src, nr).CopyTo(new Span<float>(d, nr));
                    }
                    else
                    {
                        int j = 0;
                        for (; j < cols; j++) d[j] = src[j];
                        for (; j < nr; j++) d[j] = 0;
                    }
                }
            }
            else
            {
                // op(B)[p,j] = B[j*ldb + p]: read each column of op(B) contiguously, write with stride nr.
                for (int j = 0; j < cols; j++)
                {
                    float* src = b + (long)(jc + jr + j) * ldb + pc;
                    for (int p = 0; p < kc; p++) panel[p * nr + j] = src[p];
                }
                for (int j = cols; j < nr; j++)
                    for (int p = 0; p < kc; p++) panel[p * nr + j] = 0;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x32(int kc, float* a, float* b, float* c, int ldc, float beta)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00); c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10); c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20); c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30); c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40); c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50); c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            var a6 = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(a6, b0, c60); c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            var a7 = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(a7, b0, c70); c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            a += 8;
            b += 32;
        }
        Store512(c, c00, c01, beta); c += ldc;
        Store512(c, c10, c11, beta); c += ldc;
        Store512(c, c20, c21, beta); c += ldc;
        Store512(c, c30, c31, beta); c += ldc;
        Store512(c, c40, c41, beta); c += ldc;
        Store512(c, c50, c51, beta); c += ldc;
        Store512(c, c60, c61, beta); c += ldc;
        Store512(c, c70, c71, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> v0, Vector512<float> v1, float beta)
    {
        if (beta == 0)
        {
            v0.Store(c); v1.Store(c + 16);
        }
        else if (beta == 1)
        {
            (Vector512.Load(c) + v0).Store(c); (Vector512.Load(c + 16) + v1).Store(c + 16);
        }
        else
        {
            var vb = Vector512.Create(beta);
            Vector512.FusedMultiplyAdd(vb, Vector512.Load(c), v0).Store(c);
            Vector512.FusedMultiplyAdd(vb, Vector512.Load(c + 16), v1).Store(c + 16);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* a, float* b, float* c, int ldc, float beta)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector256<float> c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00); c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10); c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20); c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30); c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40); c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50); c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            a += 6;
            b += 16;
        }
        Store256(c, c00, c01, beta); c += ldc;
        Store256(c, c10, c11, beta); c += ldc;
        Store256(c, c20, c21, beta); c += ldc;
        Store256(c, c30, c31, beta); c += ldc;
        Store256(c, c40, c41, beta); c += ldc;
        Store256(c, c50, c51, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> v0, Vector256<float> v1, float beta)
    {
        if (beta == 0)
        {
            v0.Store(c); v1.Store(c + 8);
        }
        else if (beta == 1)
        {
            (Vector256.Load(c) + v0).Store(c); (Vector256.Load(c + 8) + v1).Store(c + 8);
        }
        else
        {
            var vb = Vector256.Create(beta);
            (vb * Vector256.Load(c) + v0).Store(c);
            (vb * Vector256.Load(c + 8) + v1).Store(c + 8);
        }
    }

    private static void KernelScalar(int kc, float* a, float* b, float* c, int ldc, float beta)
    {
        float* acc = stackalloc float[16];
        for (int i = 0; i < 16; i++) acc[i] = 0;
        for (int p = 0; p < kc; p++)
        {
            for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                acc[i * 4 + j] += a[i] * b[j];
            a += 4;
            b += 4;
        }
        for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
        {
            float* dst = c + (long)i * ldc + j;
            *dst = beta == 0 ? acc[i * 4 + j] : beta * *dst + acc[i * 4 + j];
        }
    }

    private static void CheckOperand(ReadOnlySpan<float> s, int rows, int cols, int ld, string name)
    {
        if (ld < cols)
            throw new ArgumentException($"Leading dimension of {name} ({ld}) is smaller than its {cols} columns.");
        long needed = rows == 0 ? 0 : (long)(rows - 1) * ld + cols;
        if (s.Length < needed)
            throw new ArgumentException($"{name} holds {s.Length} values; a {rows} x {cols} matrix with leading dimension {ld} needs {needed}.");
    }
}
