using System.Diagnostics;
using System.Text.Json;
using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
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

    /// <summary>
    /// TF32 on (cuDNN tensor-op math, cuBLAS TF32): inputs are rounded to 10-bit mantissas, so each
    /// product can be off by about 2^-10 of its size. Stated tolerance per output:
    /// |y - y_ref| &lt;= 2e-3 * sum |w||x| (the same sum with absolute values), against float64 references.
    /// </summary>
    [Test]
    public void Tf32ConvolutionAndLinearStayWithinTheirStatedTolerance()
    {
        BackendFixtures.RequireCuda();
        var rng = new Fresh();
        using var tf32 = CudaBackend.Create(0, allowTf32: true);
        Assert.That(tf32.AllowTf32, Is.True);
        int n = 8, c = 64, h = 16, k = 64;
        var x = rng.Floats(n * c * h * h, -2, 2);
        var w = rng.Floats(k * c * 9, -0.5f, 0.5f);
        var tx = tf32.AllocateTensor(TensorShape.Nchw(n, c, h, h));
        var tw = tf32.AllocateTensor(TensorShape.Nchw(k, c, 3, 3));
        var ty = tf32.AllocateTensor(TensorShape.Nchw(n, k, h, h));
        tf32.Upload<float>(x, tx);
        tf32.Upload<float>(w, tw);
        tf32.ConvolutionForward(tx, tw, ty, new ConvSpec(1, 1));
        var reference = Reference.Conv(Close.ToDouble(x), n, c, h, h, Close.ToDouble(w), k, 3, 1, 1);
        var magnitude = Reference.Conv(x.Select(v => (double)Math.Abs(v)).ToArray(), n, c, h, h, w.Select(v => (double)Math.Abs(v)).ToArray(), k, 3, 1, 1);
        var got = tf32.ToArray(ty);
        for (int i = 0; i < got.Length; i++)
            Assert.That(Math.Abs(got[i] - reference[i]), Is.LessThanOrEqualTo(2e-3 * magnitude[i] + 1e-6), $"TF32 convolution output {i} ({rng})");

        int rows = 64, inF = 512, outF = 100;
        var xl = rng.Floats(rows * inF);
        var wl = rng.Floats(outF * inF, -0.2f, 0.2f);
        var bl = rng.Floats(outF);
        var txl = tf32.AllocateTensor(new TensorShape(rows, inF));
        var twl = tf32.AllocateTensor(new TensorShape(outF, inF));
        var tbl = tf32.AllocateTensor(new TensorShape(outF));
        var tyl = tf32.AllocateTensor(new TensorShape(rows, outF));
        tf32.Upload<float>(xl, txl);
        tf32.Upload<float>(wl, twl);
        tf32.Upload<float>(bl, tbl);
        tf32.LinearForward(txl, twl, tbl, tyl);
        var refl = Reference.Linear(Close.ToDouble(xl), rows, inF, Close.ToDouble(wl), Close.ToDouble(bl), outF);
        var magl = Reference.Linear(xl.Select(v => (double)Math.Abs(v)).ToArray(), rows, inF, wl.Select(v => (double)Math.Abs(v)).ToArray(), new double[outF], outF);
        var gotl = tf32.ToArray(tyl);
        for (int i = 0; i < gotl.Length; i++)
            Assert.That(Math.Abs(gotl[i] - refl[i]), Is.LessThanOrEqualTo(2e-3 * magl[i] + 1e-6), $"TF32 linear output {i} ({rng})");
    }

    /// <summary>
    /// The cuDNN algorithm choices a process writes are read back by the next one (no search, the
    /// same algorithms), and an entry naming an algorithm outside the allowed, stable set — a stale
    /// file from another policy — or a damaged line is ignored and the shape searched again.
    /// </summary>
    [Test]
    public void CudnnChoicesAreReadBackByASecondProcessAndStaleEntriesAreSearchedAgain()
    {
        BackendFixtures.RequireCuda();
        string cache = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"cudnn-cache-{Guid.NewGuid():N}");
        Directory.CreateDirectory(cache);
        try
        {
            // 1. Another process chooses the algorithms for resnet8 at batch 16 and writes them down.
            string json = Path.Combine(cache, "prepared.json");
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "cudaswa.dll"), "bench", "--device", "cuda", "--prepare-only", "--models", "resnet8", "--batch", "16", "--json", json })
                psi.ArgumentList.Add(a);
            psi.Environment["CUDASWA_KERNEL_CACHE"] = cache;
            using (var p = Process.Start(psi)!)
            {
                string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.That(p.ExitCode, Is.Zero, output);
            }
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var theirs = doc.RootElement.GetProperty("convolution_algorithms").EnumerateArray()
                .Select(e => (e.GetProperty("shape").GetString(), e.GetProperty("forward").GetString(), e.GetProperty("backward_data").GetString(), e.GetProperty("backward_filter").GetString()))
                .OrderBy(t => t.Item1).ToList();
            Assert.That(theirs, Is.Not.Empty, "the other process planned convolutions");

            // 2. This process reads them: every shape from the file, the same algorithms.
            using (var b = CudaBackend.Create(0, false, null, vendorLibraries: true, cacheFolder: cache))
            using (var net = ModelZoo.Create("resnet8", 10, b, 16, 1))
            {
                var ours = b.ConvolutionChoices;
                Assert.That(ours.All(c => c.FromCache), Is.True, "no shape searched again");
                Assert.That(ours.Select(c => (c.Shape, c.Forward, c.BackwardData, c.BackwardFilter)).OrderBy(t => t.Shape).ToList(), Is.EqualTo(theirs));
            }

            // 3. Stale and damaged entries: every entry rewritten to forward FFT (4), plus a line that does not parse.
            string file = Directory.GetFiles(cache, "cudnn-algorithms-*.txt").Single();
            var stale = File.ReadAllLines(file).Where(l => !l.StartsWith('#')).Select(l => l.Split(' ')).Select(f => $"{f[0]} 4 {f[2]} {f[3]}").Append("garbage line");
            File.WriteAllLines(file, stale);
            using (var b = CudaBackend.Create(0, false, null, vendorLibraries: true, cacheFolder: cache))
            using (var net = ModelZoo.Create("resnet8", 10, b, 16, 1))
            {
                var ours = b.ConvolutionChoices;
                Assert.That(ours.Any(c => c.FromCache), Is.False, "stale entries are not used");
                Assert.That(ours.Select(c => c.Forward), Is.All.AnyOf("IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM"));
                Assert.That(ours.Select(c => c.BackwardData), Is.All.EqualTo("ALGO_1"));
                Assert.That(ours.Select(c => c.BackwardFilter), Is.All.EqualTo("ALGO_1"));
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
