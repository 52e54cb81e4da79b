using CudaSwa.Cpu;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// Every elementwise op, the SGD step and augmentation at a few million elements: more than one
/// grid-stride pass on any GPU (an H200's grid is capped at 132 SMs x 32 blocks x 256 threads =
/// 1.08M threads; the stand-in's at 32K), with a tail that is not a multiple of anything.
/// Expected values are computed here element by element with the same float operations, so
/// every backend must match them exactly.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class LargeCountTests(string backend) : BackendTest(backend)
{
    private const int N = 3_000_017;

    private static void Same(float[] actual, float[] expected, string what) => Emulation.EmulatedKernelTests.Same(actual, expected, what);

    [Test]
    public void ReluAddAndAccumulateOverSeveralGridPasses()
    {
        var x = Rng.Floats(N, -2, 2);
        var dy = Rng.Floats(N);
        var prior = Rng.Floats(N);
        var tx = Put(x, N);
        var ty = Poisoned(N);
        B.ReluForward(tx, ty);
        Same(Get(ty), x.Select(v => v > 0 ? v : 0f).ToArray(), $"relu ({Rng})");
        var tdx = Put(prior, N);
        B.ReluBackward(ty, Put(dy, N), tdx, true);
        Same(Get(tdx), x.Select((v, i) => prior[i] + (v > 0 ? dy[i] : 0f)).ToArray(), $"relu backward, accumulated ({Rng})");
        var sum = Poisoned(N);
        B.Add(tx, Put(dy, N), sum);
        Same(Get(sum), x.Select((v, i) => v + dy[i]).ToArray(), $"add ({Rng})");
        var acc = Put(prior, N);
        B.AccumulateGradient(tx, acc, true);
        Same(Get(acc), x.Select((v, i) => prior[i] + v).ToArray(), $"accumulate ({Rng})");
    }

    [Test]
    public void DropoutOverSeveralGridPasses()
    {
        var x = Rng.Floats(N);
        float p = 0.5f;
        ulong seed = (ulong)Rng.Random.NextInt64(), stream = 7;
        float scale = 1f / (1f - p);
        var y = Poisoned(N);
        B.DropoutForward(Put(x, N), y, p, seed, stream);
        // Which elements are kept is the CPU twin's (the mask's law is tested in PointwiseTests): every pass of the grid must agree with it.
        using var cpu = new CpuBackend();
        var yc = cpu.AllocateTensor(new TensorShape(N));
        var tc = cpu.AllocateTensor(new TensorShape(N));
        cpu.Upload<float>(x, tc);
        cpu.DropoutForward(tc, yc, p, seed, stream);
        var keep = cpu.ToArray(yc).Select(v => v != 0).ToArray();
        Same(Get(y), x.Select((v, i) => keep[i] ? v * scale : 0f).ToArray(), $"dropout forward ({Rng})");
        var dx = Poisoned(N);
        B.DropoutBackward(Put(x, N), dx, p, seed, stream, false);
        Same(Get(dx), x.Select((v, i) => keep[i] ? v * scale : 0f).ToArray(), $"dropout backward ({Rng})");
    }

    [Test]
    public void PoolingBackwardOverSeveralGridPasses()
    {
        int n = 366, c = 64, h = 8, w = 16; // 2,998,272 inputs
        var x = Rng.Floats(n * c * h * w);
        var dy = Rng.Floats(n * c);
        var dx = Poisoned(n, c, h, w);
        B.GlobalAveragePoolBackward(Put(dy, n, c), dx, false);
        Same(Get(dx), Enumerable.Range(0, x.Length).Select(i => dy[i / (h * w)] / (h * w)).ToArray(), $"global average pool backward ({Rng})");
        var tx = Put(x, n, c, h, w);
        var y = Poisoned(n, c, h / 2, w / 2);
        B.MaxPoolForward(tx, y);
        var expected = new float[n * c * (h / 2) * (w / 2)];
        for (int o = 0; o < expected.Length; o++)
        {
            int plane = o / (h / 2 * (w / 2)), i = o % (h / 2 * (w / 2)) / (w / 2), j = o % (w / 2);
            int at = plane * h * w + 2 * i * w + 2 * j;
            expected[o] = Math.Max(Math.Max(x[at], x[at + 1]), Math.Max(x[at + w], x[at + w + 1]));
        }
        Same(Get(y), expected, $"max pool forward ({Rng})");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SgdStepOverSeveralGridPasses(bool nesterov)
    {
        var w = Rng.Floats(N);
        var g = Rng.Floats(N);
        var v = Rng.Floats(N);
        var h = new SgdHyper(0.05f, 0.9f, 5e-4f, nesterov);
        var tw = Put(w, N);
        var tv = Put(v, N);
        B.SgdStep(tw, Put(g, N), tv, h);
        var we = new float[N];
        var ve = new float[N];
        for (int i = 0; i < N; i++)
        {
            float gi = g[i] + h.WeightDecay * w[i];
            float vi = h.Momentum * v[i] + gi;
            ve[i] = vi;
            we[i] = w[i] - h.LearningRate * (nesterov ? gi + h.Momentum * vi : vi);
        }
        Same(Get(tv), ve, $"velocity ({Rng})");
        Same(Get(tw), we, $"weights ({Rng})");
    }

    [Test]
    public void AugmentationOfALargeBatchMatchesTheCpu()
    {
        int count = 1200, batch = 1000; // 3,072,000 outputs
        var images = new byte[count * 3 * 32 * 32];
        Rng.Random.NextBytes(images);
        var labels = Rng.Ints(count, 0, 10);
        var indices = Rng.Ints(batch, 0, count);
        var spec = new AugmentSpec { Seed = (ulong)Rng.Seed, Padding = PaddingMode.Reflect };
        using var cpu = new CpuBackend();
        Tensor Images(Backend b)
        {
            var t = b.AllocateTensor(TensorShape.Nchw(count, 3, 32, 32), DType.UInt8);
            b.Upload<byte>(images, t);
            return t;
        }
        Tensor Ints(Backend b, int[] v)
        {
            var t = b.AllocateTensor(new TensorShape(v.Length), DType.Int32);
            b.Upload<int>(v, t);
            return t;
        }
        var x = B.AllocateTensor(TensorShape.Nchw(batch, 3, 32, 32));
        var y = B.AllocateTensor(new TensorShape(batch), DType.Int32);
        B.AugmentBatch(Images(B), Ints(B, labels), Ints(B, indices), spec, 3, x, y);
        var xc = cpu.AllocateTensor(TensorShape.Nchw(batch, 3, 32, 32));
        var yc = cpu.AllocateTensor(new TensorShape(batch), DType.Int32);
        cpu.AugmentBatch(Images(cpu), Ints(cpu, labels), Ints(cpu, indices), spec, 3, xc, yc);
        Same(Get(x), cpu.ToArray(xc), $"augmented batch ({Rng})");
    }
}
