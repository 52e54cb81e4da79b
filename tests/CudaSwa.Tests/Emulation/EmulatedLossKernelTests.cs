using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/loss.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedLossKernelTests : EmulatedKernelTests
{
    [TestCase(1, 10)]
    [TestCase(37, 10)]
    [TestCase(300, 100)]
    public void EmulatedSoftmaxCrossEntropyMatchesItsTwin(int n, int k)
    {
        var lib = EmulationLibrary.Require();
        var z = _rng.Floats(n * k, -6, 6);
        var labels = _rng.Ints(n, 0, k);
        float statsLoss = (float)_rng.Random.NextDouble(), statsCorrect = _rng.Random.Next(10);
        using var hz = HostArray<float>.Of(z);
        using var hl = HostArray<int>.Of(labels);
        using var hdz = new HostArray<float>(n * k);
        using var rows = new HostArray<float>(2 * n);
        var rowCorrect = rows.Ptr.Plus(4L * n);
        using var hstats = HostArray<float>.Of([statsLoss, statsCorrect]);
        lib.Launch(Kernels.SoftmaxCrossEntropy, GridExact((long)n * 32), Block, new(hz.Ptr, hl.Ptr, hdz.Ptr, rows.Ptr, rowCorrect, n, k));
        lib.Launch(Kernels.AddRowStats, 1, Block, new(rows.Ptr, rowCorrect, n, hstats.Ptr));

        var tdz = _cpu.AllocateTensor(new TensorShape(n, k));
        var tstats = Cpu([statsLoss, statsCorrect]);
        _cpu.SoftmaxCrossEntropy(Cpu(z, n, k), CpuInts(labels), tdz, tstats);
        var stats = Read(tstats);
        // expf/logf in float against the twin's double exp/log: a few ulps per row.
        Close.Check(hdz.Span, Read(tdz), 1e-7, 1e-5, $"softmax_cross_entropy gradient ({_rng})");
        Close.Check(hstats.Span[..1], stats.AsSpan(0, 1), 1e-5 * n, 1e-5, $"loss sum ({_rng})");
        Assert.That(hstats.Span[1], Is.EqualTo(stats[1]), $"correct count ({_rng})");

        // Evaluation form: no gradient buffer (null pointer).
        using var hstats2 = HostArray<float>.Of([0f, 0f]);
        lib.Launch(Kernels.SoftmaxCrossEntropy, GridExact((long)n * 32), Block, new(hz.Ptr, hl.Ptr, DevicePtr.Null, rows.Ptr, rowCorrect, n, k));
        lib.Launch(Kernels.AddRowStats, 1, Block, new(rows.Ptr, rowCorrect, n, hstats2.Ptr));
        Assert.That(hstats2.Span[1], Is.EqualTo(stats[1] - statsCorrect), "correct count without gradient");
    }

    [TestCase(3, 10)]
    [TestCase(65, 100)]
    public void EmulatedSoftmaxMatchesItsTwin(int n, int k)
    {
        var lib = EmulationLibrary.Require();
        var z = _rng.Floats(n * k, -8, 8);
        using var hz = HostArray<float>.Of(z);
        using var hp = new HostArray<float>(n * k);
        lib.Launch(Kernels.Softmax, GridExact((long)n * 32), Block, new(hz.Ptr, hp.Ptr, n, k));
        var tp = _cpu.AllocateTensor(new TensorShape(n, k));
        _cpu.Softmax(Cpu(z, n, k), tp);
        Close.Check(hp.Span, Read(tp), 1e-8, 1e-5, $"softmax ({_rng})");
    }
}
