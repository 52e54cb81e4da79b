using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// The CUDA backend against its CPU twin on identical inputs (TF32 off). Ignored, with the
/// reason, where no GPU is usable.
/// </summary>
[Category("Gpu")]
public class CpuVsCudaTests
{
    private static readonly CpuBackend Cpu = new();

    [OneTimeTearDown]
    public void Release() => Cpu.Dispose();

    private static (Tensor Cpu, Tensor Gpu) Both(Backend gpu, float[] data, params int[] shape)
    {
        var a = Cpu.AllocateTensor(new TensorShape(shape));
        Cpu.Upload<float>(data, a);
        var b = gpu.AllocateTensor(new TensorShape(shape));
        gpu.Upload<float>(data, b);
        return (a, b);
    }

    [TestCase(PaddingMode.Zero)]
    [TestCase(PaddingMode.Reflect)]
    public void AugmentedBatchesAreBitIdentical(PaddingMode padding)
    {
        var gpu = BackendFixtures.RequireCuda();
        var rng = new Fresh();
        var (train, _) = SyntheticCifar.Generate(200, 10, (ulong)rng.Seed);
        using var cpuData = new DeviceDataset(train, Cpu);
        using var gpuData = new DeviceDataset(train, gpu);
        var spec = new AugmentSpec { Padding = padding };
        using var cpuLoader = new BatchLoader(cpuData, 64, true, spec, (ulong)rng.Seed);
        using var gpuLoader = new BatchLoader(gpuData, 64, true, spec, (ulong)rng.Seed);
        var xc = Cpu.AllocateTensor(TensorShape.Nchw(64, 3, 32, 32));
        var xg = gpu.AllocateTensor(TensorShape.Nchw(64, 3, 32, 32));
        var lc = Cpu.AllocateTensor(new TensorShape(64), DType.Int32);
        var lg = gpu.AllocateTensor(new TensorShape(64), DType.Int32);
        foreach (int epoch in new[] { 0, 3 })
        {
            cpuLoader.BeginEpoch(epoch);
            gpuLoader.BeginEpoch(epoch);
            for (int b = 0; b < cpuLoader.BatchCount; b++)
            {
                int n = cpuLoader.Load(b, xc, lc);
                Assert.That(gpuLoader.Load(b, xg, lg), Is.EqualTo(n));
                Assert.That(gpu.ToArray(xg.WithBatch(n)), Is.EqualTo(Cpu.ToArray(xc.WithBatch(n))), $"epoch {epoch} batch {b} ({rng})");
                var li = new int[n]; var lj = new int[n];
                Cpu.Download<int>(lc.WithBatch(n), li);
                gpu.Download<int>(lg.WithBatch(n), lj);
                Assert.That(lj, Is.EqualTo(li));
            }
        }
    }

    /// <summary>
    /// One full resnet20 training step (forward, loss, backward, SGD) from the same weights on the
    /// same batch. Tolerances cover float32 reordering across ~20 layers (cuDNN vs our GEMM):
    /// logits and loss 1e-4 relative, gradients 1e-3 abs-scaled, updated weights 1e-5.
    /// </summary>
    [Test]
    public void Resnet20TrainingStepMatchesTheCpu()
    {
        var gpu = BackendFixtures.RequireCuda();
        var rng = new Fresh();
        int batch = 32;
        using var netC = ModelZoo.Create("resnet20", 10, Cpu, batch, (ulong)rng.Seed);
        using var netG = ModelZoo.Create("resnet20", 10, gpu, batch, (ulong)rng.Seed);
        netG.Parameters.FromHost(netC.Parameters.ToHost());
        var x = rng.Floats(batch * 3072, -2, 2);
        var labels = rng.Ints(batch, 0, 10);
        Cpu.Upload<float>(x, netC.Input(batch));
        gpu.Upload<float>(x, netG.Input(batch));
        using var sgdC = new Sgd(netC, 0.9f, 5e-4f);
        using var sgdG = new Sgd(netG, 0.9f, 5e-4f);
        using var stepC = new TrainingStep(netC, sgdC);
        using var stepG = new TrainingStep(netG, sgdG);
        Cpu.Upload<int>(labels, stepC.Labels);
        gpu.Upload<int>(labels, stepG.Labels);
        stepC.Run(batch, 0.1f, 1);
        stepG.Run(batch, 0.1f, 1);
        Close.Check(gpu.ToArray(netG.Logits(batch)), Cpu.ToArray(netC.Logits(batch)), 1e-4, 1e-4, $"logits ({rng})");
        Assert.That(stepG.ReadStats().LossSum, Is.EqualTo(stepC.ReadStats().LossSum).Within(1e-4 * batch), "loss");
        var gc = netC.Gradients.ToHost();
        double scale = gc.Max(v => Math.Abs((double)v));
        Close.Check(netG.Gradients.ToHost(), gc, 1e-3 * scale, 1e-3, $"gradients ({rng})");
        Close.Check(netG.Parameters.ToHost(), netC.Parameters.ToHost(), 1e-5, 1e-5, "weights after the SGD step");
        Close.Check(netG.Buffers.ToHost(), netC.Buffers.ToHost(), 1e-5, 1e-4, "BN running statistics");
    }

    [Test]
    public void BatchNormRecomputeMatchesTheCpu()
    {
        var gpu = BackendFixtures.RequireCuda();
        var rng = new Fresh();
        var (train, _) = SyntheticCifar.Generate(300, 10, (ulong)rng.Seed);
        using var cpuData = new DeviceDataset(train, Cpu);
        using var gpuData = new DeviceDataset(train, gpu);
        using var cpuLoader = new BatchLoader(cpuData, 64, true, new AugmentSpec(), 9);
        using var gpuLoader = new BatchLoader(gpuData, 64, true, new AugmentSpec(), 9);
        using var netC = ModelZoo.Create("resnet8", 10, Cpu, 64, (ulong)rng.Seed);
        using var netG = ModelZoo.Create("resnet8", 10, gpu, 64, (ulong)rng.Seed);
        netG.Parameters.FromHost(netC.Parameters.ToHost());
        foreach (var mode in new[] { BatchNormRecomputeMode.Exact, BatchNormRecomputeMode.SampleWeighted })
        {
            BatchNormRecompute.Run(netC, cpuLoader, 2, mode);
            BatchNormRecompute.Run(netG, gpuLoader, 2, mode);
            Close.Check(netG.Buffers.ToHost(), netC.Buffers.ToHost(), 1e-5, 1e-4, $"{mode} statistics ({rng})");
        }
    }

    [Test]
    public void SwaUpdateOnAWideResNetSizedArenaIsTheMean()
    {
        var gpu = BackendFixtures.RequireCuda();
        var rng = new Fresh();
        var layout = ModelZoo.Describe("wrn28x10", 10).Parameters;
        using var avg = new Arena(layout, gpu);
        using var cur = new Arena(layout, gpu);
        int n = (int)avg.All.Length;
        var mean = new double[n];
        const int k = 3;
        for (int i = 0; i < k; i++)
        {
            var w = rng.Floats(n, -1, 1);
            for (int j = 0; j < n; j++) mean[j] += w[j] / (double)k;
            cur.FromHost(w);
            gpu.AverageUpdate(avg.All, cur.All, 1f / (i + 1));
        }
        Close.Check(avg.ToHost(), mean, 1e-6, 1e-5, $"SWA of {k} wrn28x10 arenas ({rng})");
    }
}
