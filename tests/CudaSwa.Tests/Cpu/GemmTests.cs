using CudaSwa.Cpu;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cpu;

/// <summary>The blocked SIMD GEMM against a naive double product, over shapes that hit every edge tile.</summary>
public class GemmTests
{
    /// <summary>Every micro-kernel this CPU can run (the narrower ones too).</summary>
    private static IEnumerable<Gemm.Kernel> Kernels() =>
        new[] { Gemm.Kernel.Avx512, Gemm.Kernel.Avx256, Gemm.Kernel.Scalar }.Where(k => k >= Gemm.Best);

    private static IEnumerable<TestCaseData> Cases()
    {
        int[][] shapes = [[1, 1, 1], [7, 5, 3], [8, 32, 16], [9, 33, 17], [6, 16, 300], [100, 37, 260], [33, 1030, 19], [130, 2100, 70]];
        foreach (var kernel in Kernels())
        foreach (var s in shapes)
        foreach (bool ta in new[] { false, true })
        foreach (bool tb in new[] { false, true })
            yield return new TestCaseData(kernel.ToString(), s[0], s[1], s[2], ta, tb).SetName($"Gemm_{kernel}_{s[0]}x{s[1]}x{s[2]}_{(ta ? "T" : "N")}{(tb ? "T" : "N")}");
    }

    [TearDown]
    public void RestoreKernel() => Gemm.Use(Gemm.Best);

    [TestCaseSource(nameof(Cases))]
    public void MatchesNaiveProduct(string kernel, int m, int n, int k, bool ta, bool tb)
    {
        Gemm.Use(Enum.Parse<Gemm.Kernel>(kernel));
        var rng = new Fresh();
        int extra = 3; // leading dimensions larger than the matrix, to catch stride bugs
        int lda = (ta ? m : k) + extra, ldb = (tb ? k : n) + extra, ldc = n + extra;
        var a = rng.Floats((ta ? k : m) * lda);
        var b = rng.Floats((tb ? n : k) * ldb);
        foreach (float beta in new[] { 0f, 1f, 0.5f })
        {
            float alpha = beta == 0.5f ? -1.5f : 1f;
            var c = beta == 0 ? Close.Poison(m * ldc) : rng.Floats(m * ldc);
            var expected = new double[m * ldc];
            for (int i = 0; i < m; i++)
            for (int j = 0; j < ldc; j++)
            {
                if (j >= n) { expected[i * ldc + j] = c[i * ldc + j]; continue; }
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                expected[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * (double)c[i * ldc + j]);
            }
            Gemm.Multiply(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            // Float32 sums of k products of values in [-1, 1]: error grows like sqrt(k) * eps.
            Close.Check(c, expected, 1e-5 * Math.Sqrt(k) * 4, 1e-5, $"C with beta {beta} ({rng})");
        }
    }

    [Test]
    public void ParallelSplitMatchesSerial()
    {
        var rng = new Fresh();
        int m = 40, n = 700, k = 90;
        var a = rng.Floats(m * k);
        var b = rng.Floats(n * k);
        var serial = new float[m * n];
        var parallel = Close.Poison(m * n);
        Gemm.Multiply(false, true, m, n, k, 1f, a, k, b, k, 0f, serial, n);
        unsafe
        {
            fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = parallel)
                Gemm.MultiplyParallel(false, true, m, n, k, 1f, pa, k, pb, k, 0f, pc, n);
        }
        Assert.That(parallel, Is.EqualTo(serial), $"{rng}");
    }

    [Test]
    public void RejectsOperandsThatAreTooSmall()
    {
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 4, 4, 4, 1f, new float[15], 4, new float[16], 4, 0f, new float[16], 4));
        Assert.That(ex!.Message, Does.Contain("A holds 15 values"));
    }
}
