using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// A tensor of more than 2 GiB (2^29 + 2^20 + 7 floats) uploaded, copied on the device and
/// downloaded on every backend: the host side of a copy is a byte span, whose length is an int,
/// so a transfer of a whole tensor that size must go in runs (as a SWAG ring of WideResNet-28-10,
/// 2.9 GB, does). The values are a seeded hash of the index (23-bit integers, exact in float32),
/// so a run copied to the wrong place, twice or not at all shows.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
[NonParallelizable]
public class LargeTransferTests(string backend) : BackendTest(backend)
{
    private const int N = (1 << 29) + (1 << 20) + 7;

    [Test]
    public void TransfersPastTwoGibibytesArriveWhole()
    {
        Assert.That((long)N * sizeof(float), Is.GreaterThan(2L << 30), "more than 2 GiB");
        uint salt = (uint)Rng.Seed;
        float Value(int i) => (float)(((uint)i * 2654435761u ^ salt) >> 9);
        var host = new float[N];
        for (int i = 0; i < N; i++) host[i] = Value(i);
        var a = B.AllocateTensor(new TensorShape(N));
        var b = B.AllocateTensor(new TensorShape(N));
        try
        {
            B.Upload<float>(host, a);
            B.Copy(a, b);
            Array.Clear(host);
            B.Download<float>(b, host);
            int bad = -1;
            for (int i = 0; i < N && bad < 0; i++)
                if (host[i] != Value(i)) bad = i;
            Assert.That(bad, Is.EqualTo(-1), $"first wrong element ({Rng})" + (bad >= 0 ? $": {host[bad]} instead of {Value(bad)}" : ""));
        }
        finally
        {
            a.Buffer.Dispose();
            b.Buffer.Dispose();
            host = null!;
            GC.Collect(); // 2 GB of host array: not left for the next test's peak
        }
    }
}
