using CudaSwa.Native;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// The stand-in cuBLAS itself, through the engine's binding table: SGEMM in column-major against
/// a float64 loop written from the definition, for every transpose combination, padded leading
/// dimensions and alpha/beta; TF32 mode; and its refusals with cuBLAS's status codes. Ignored
/// with the reason without clang++-14 or NVRTC.
/// </summary>
[Category("StandIn")]
[NonParallelizable]
public unsafe class StandInCublasTests
{
    private StandInVendor _v = null!;
    private Fresh _rng = null!;

    [SetUp]
    public void Open()
    {
        _rng = new Fresh();
        _v = new StandInVendor();
    }

    [TearDown]
    public void Release() => _v?.Dispose();

    private CublasApi Blas => _v.Blas;

    /// <summary>Element (i, j) of a column-major matrix with leading dimension ld.</summary>
    private static float At(float[] m, int i, int j, int ld) => m[i + j * ld];

    [TestCase(CublasApi.OpN, CublasApi.OpN)]
    [TestCase(CublasApi.OpT, CublasApi.OpN)]
    [TestCase(CublasApi.OpN, CublasApi.OpT)]
    [TestCase(CublasApi.OpT, CublasApi.OpT)]
    public void StandInSgemmMatchesTheDefinition(int ta, int tb)
    {
        int m = 5, n = 4, k = 3;
        int aRows = ta == CublasApi.OpN ? m : k, aCols = ta == CublasApi.OpN ? k : m;
        int bRows = tb == CublasApi.OpN ? k : n, bCols = tb == CublasApi.OpN ? n : k;
        int lda = aRows + 2, ldb = bRows + 1, ldc = m + 3; // padded: the gaps must be skipped and left alone
        var ha = _rng.Floats(lda * aCols); var hb = _rng.Floats(ldb * bCols); var hc = _rng.Floats(ldc * n);
        var a = _v.Put(ha); var b = _v.Put(hb); var c = _v.Put(hc);
        float alpha = 0.75f, beta = -1.25f;
        Blas.Check(Blas.cublasSgemm(_v.Cublas, ta, tb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc));
        var expected = hc.Select(v => (double)v).ToArray();
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++)
            {
                double sum = 0;
                for (int l = 0; l < k; l++)
                {
                    double opA = ta == CublasApi.OpN ? At(ha, i, l, lda) : At(ha, l, i, lda);
                    double opB = tb == CublasApi.OpN ? At(hb, l, j, ldb) : At(hb, j, l, ldb);
                    sum += opA * opB;
                }
                expected[i + j * ldc] = 0.75 * sum - 1.25 * hc[i + j * ldc];
            }
        Close.Check(_v.Get(c, hc.Length), expected, 1e-6, 1e-6, $"C = 0.75 op(A) op(B) - 1.25 C, ta {ta} tb {tb} ({_rng})");
    }

    [Test]
    public void StandInSgemmWithBetaZeroNeverReadsC()
    {
        var a = _v.Put([1, 2, 3, 4]); // [[1, 3], [2, 4]] column-major
        var b = _v.Put([1, 1]);
        var c = _v.Poisoned(2);
        float one = 1, zero = 0;
        Blas.Check(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 2, 1, 2, &one, a, 2, b, 2, &zero, c, 2));
        Assert.That(_v.Get(c, 2), Is.EqualTo(new float[] { 4, 6 }), "row sums, the NaNs in C never read");
    }

    [Test]
    public void StandInTf32ModeRoundsTheInputs()
    {
        // 1 + 2^-12 is not a TF32 value (10-bit mantissa): TF32 rounds it to 1.
        float v = 1f + MathF.Pow(2, -12);
        var a = _v.Put([v]); var b = _v.Put([1]); var c = _v.Poisoned(1);
        float one = 1, zero = 0;
        Blas.Check(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1));
        Assert.That(_v.Get(c, 1)[0], Is.EqualTo(v), "default math: exact float32");
        Blas.Check(Blas.cublasSetMathMode(_v.Cublas, CublasApi.Tf32TensorOpMath));
        Blas.Check(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1));
        Assert.That(_v.Get(c, 1)[0], Is.EqualTo(1f), "TF32: the input rounded to a 10-bit mantissa");
    }

    [Test]
    public void StandInRefusesWhatCublasRefuses()
    {
        float one = 1, zero = 0;
        var a = _v.Put(_rng.Floats(6)); var b = _v.Put(_rng.Floats(6)); var c = _v.Poisoned(4);
        Assert.That(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 2, 2, 3, &one, a, 1, b, 3, &zero, c, 2), Is.EqualTo(CublasStatus.InvalidValue), "lda below m");
        Assert.That(_v.LastCublasError(), Does.Contain("lda"));
        Assert.That(Blas.cublasSgemm(_v.Cublas, 5, CublasApi.OpN, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2), Is.EqualTo(CublasStatus.InvalidValue), "transa 5");
        Assert.That(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, -1, 2, 3, &one, a, 2, b, 3, &zero, c, 2), Is.EqualTo(CublasStatus.InvalidValue), "m < 0");
        // B spans (n-1)*ldb + k = 65 floats with ldb 62: one past its 64-float allocation (allocations are at least 256 bytes).
        var b64 = _v.Put(_rng.Floats(64));
        Assert.That(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 2, 2, 3, &one, a, 2, b64, 62, &zero, c, 2), Is.EqualTo(CublasStatus.InvalidValue), "B's extent");
        Blas.Check(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 2, 2, 3, &one, a, 2, b64, 61, &zero, c, 2));
        Assert.That(_v.LastCublasError(), Does.Contain("B"));
        Assert.That(Blas.cublasSgemm(_v.Cublas, CublasApi.OpN, CublasApi.OpN, 2, 2, 2, &one, a, 2, b, 2, &zero, a, 2), Is.EqualTo(CublasStatus.InvalidValue), "C over A");
        Assert.That(Blas.cublasSetMathMode(_v.Cublas, 9), Is.EqualTo(CublasStatus.InvalidValue), "math mode 9");

        IntPtr fresh;
        Blas.Check(Blas.cublasCreate(&fresh));
        try
        {
            Assert.That(Blas.cublasSgemm(fresh, CublasApi.OpN, CublasApi.OpN, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2), Is.EqualTo(CublasStatus.NotInitialized), "work before cublasSetStream");
            Assert.That(_v.LastCublasError(), Does.Contain("cublasSetStream"));
            Assert.That(Blas.cublasSetStream(fresh, (IntPtr)0x1234), Is.EqualTo(CublasStatus.InvalidValue), "another stream");
        }
        finally
        {
            Blas.cublasDestroy(fresh);
        }
    }
}
