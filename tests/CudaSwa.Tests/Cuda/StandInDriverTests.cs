using System.Text;
using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Data;
using CudaSwa.Models;
using CudaSwa.Native;
using CudaSwa.Tensors;
using CudaSwa.Tests.Emulation;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// The CUDA backend's own host code — launch marshalling, the averaging plan and its device
/// tables, chunking, buffer lifetimes and contexts, the SWA averager, SGD, loss, augmentation —
/// run over the stand-in driver (host memory, kernels emulated on the CPU, kernels compiled by
/// the real NVRTC) and compared with the CPU backend, bit for bit where the twins agree exactly.
/// Also shows the stand-in's own checks fire. Ignored with the reason without clang++-14 or NVRTC.
/// </summary>
[NonParallelizable]
public unsafe class StandInDriverTests
{
    private CpuBackend _cpu = null!;
    private CudaBackend _gpu = null!;
    private Fresh _rng = null!;

    [SetUp]
    public void Open()
    {
        _rng = new Fresh();
        _cpu = new CpuBackend();
        _gpu = StandIn.CreateBackend();
    }

    [TearDown]
    public void Release()
    {
        _gpu?.Dispose();
        _cpu?.Dispose();
    }

    private static void Same(float[] actual, float[] expected, string what) => EmulatedKernelTests.Same(actual, expected, what);

    [Test]
    public void StandInBackendIsTheCudaBackendOverTheStandInDriver()
    {
        Assert.That(_gpu.DeviceName, Does.Contain("stand-in"));
        Assert.That(_gpu.HasVendorLibraries, Is.False);
        Assert.That(_gpu.Device.Driver.Path, Is.EqualTo(EmulationLibrary.Require().Path), "loaded by path through CuDriver.FromFile");
        Assert.That(_gpu.Libraries.Nvrtc?.Path, Is.EqualTo(Toolchain.Nvrtc(out _)), "kernels compiled by the real NVRTC");
        Assert.That(_gpu.KernelLibrary.Cubin, Is.True, "a CUBIN for the stand-in's sm_90");
        var e = Assert.Throws<NotSupportedException>(() =>
            _gpu.ConvolutionForward(_gpu.AllocateTensor(TensorShape.Nchw(1, 1, 3, 3)), _gpu.AllocateTensor(TensorShape.Nchw(1, 1, 3, 3)),
                _gpu.AllocateTensor(TensorShape.Nchw(1, 1, 3, 3)), new ConvSpec(1, 1)));
        Assert.That(e!.Message, Does.Contain("cuDNN"), "an op the stand-in cannot run says what it needs");
    }

    [Test]
    public void StandInLoadsEveryKernelWithTheDeclaredParameterLayout()
    {
        _gpu.LoadAllKernels(); // each load compares cuFuncGetParamInfo with the declaration, and throws on a mismatch
        foreach (var k in Kernels.All)
        {
            var layout = _gpu.KernelLibrary.ParameterLayout(_gpu.KernelLibrary.Function(k));
            Assert.That(layout, Is.EqualTo(k.Parameters.Select(p => (p.Offset, p.Size))), k.Name);
        }
    }

    // ---------------------------------------------------------------- averaging

    [TestCase(AveragingKind.Swa)]
    [TestCase(AveragingKind.Ema)]
    public void StandInWeightAveragerOnAResnet110IsBitEqualToTheCpuTwin(AveragingKind kind)
    {
        ulong seed = (ulong)_rng.Seed;
        using var netG = ModelZoo.Create("resnet110", 10, _gpu, 1, seed);
        using var netC = ModelZoo.Create("resnet110", 10, _cpu, 1, seed);
        var options = new AveragingOptions { Kind = kind, EmaDecay = 0.95 };
        using var avgG = new WeightAverager(netG, options);
        using var avgC = new WeightAverager(netC, options);
        int n = (int)netG.Parameters.All.Length;
        for (int i = 0; i < 3; i++)
        {
            var w = _rng.Floats(n, -2, 2);
            netG.Parameters.FromHost(w);
            netC.Parameters.FromHost(w);
            avgG.Update();
            avgC.Update();
        }
        Assert.That(avgG.Count, Is.EqualTo(3));
        Same(avgG.ParametersToHost(), avgC.ParametersToHost(), $"{kind} of 3 resnet110 arenas ({n} values, {_rng})");
    }

    /// <summary>SWA and EMA over Wide ResNet-28-10's whole parameter arena (36.5M values, ~2,200 blocks per launch).</summary>
    [TestCase(AveragingKind.Swa)]
    [TestCase(AveragingKind.Ema)]
    public void StandInAverageOverAWrn28x10ArenaIsBitEqualToTheCpuTwin(AveragingKind kind)
    {
        var layout = ModelZoo.Describe("wrn28x10", 10).Parameters;
        using var avgG = new Arena(layout, _gpu);
        using var curG = new Arena(layout, _gpu);
        using var avgC = new Arena(layout, _cpu);
        using var curC = new Arena(layout, _cpu);
        var options = new AveragingOptions { Kind = kind, EmaDecay = 0.99 };
        using var g = new MultiBufferAverager(_gpu, [new AveragePair(avgG.All, curG.All)], options);
        using var c = new MultiBufferAverager(_cpu, [new AveragePair(avgC.All, curC.All)], options);
        int n = (int)avgG.All.Length;
        for (int i = 0; i < 3; i++)
        {
            var w = _rng.Floats(n, -2, 2);
            curG.FromHost(w);
            curC.FromHost(w);
            g.Update();
            c.Update();
        }
        Same(avgG.ToHost(), avgC.ToHost(), $"{kind} of 3 wrn28x10 arenas ({n} values, {_rng})");
    }

    [Test]
    public void StandInMultiBufferAveragerOverOddViewsIsBitEqualToTheCpuTwin()
    {
        // Views at odd offsets (not 16-byte aligned: the kernel's scalar path) and lengths around the chunk size.
        int chunk = CudaBackend.AverageChunk;
        int[] lengths = [1, 5, chunk - 3, chunk + 5, 3 * chunk + 2];
        int[] offsets = [0, 1, 3, 2, 7];
        long total = lengths.Zip(offsets, (l, o) => (long)l + o).Sum();
        using var avgBufG = _gpu.Allocate(total);
        using var curBufG = _gpu.Allocate(total);
        using var avgBufC = _cpu.Allocate(total);
        using var curBufC = _cpu.Allocate(total);
        var pairsG = new List<AveragePair>();
        var pairsC = new List<AveragePair>();
        long at = 0;
        for (int i = 0; i < lengths.Length; i++)
        {
            at += offsets[i];
            var shape = new TensorShape(lengths[i]);
            pairsG.Add(new AveragePair(new Tensor(avgBufG, at, shape), new Tensor(curBufG, at, shape)));
            pairsC.Add(new AveragePair(new Tensor(avgBufC, at, shape), new Tensor(curBufC, at, shape)));
            at += lengths[i];
        }
        using var g = new MultiBufferAverager(_gpu, pairsG);
        using var c = new MultiBufferAverager(_cpu, pairsC);
        for (int step = 0; step < 4; step++)
        {
            var values = _rng.Floats((int)total, -5, 5);
            _gpu.Upload<float>(values, curBufG.AsTensor());
            _cpu.Upload<float>(values, curBufC.AsTensor());
            g.Update();
            c.Update();
        }
        for (int i = 0; i < lengths.Length; i++)
            Same(_gpu.ToArray(pairsG[i].Average), _cpu.ToArray(pairsC[i].Average), $"pair {i} (length {lengths[i]}, offset {offsets[i]}; {_rng})");
        Same(_gpu.ToArray(curBufG.AsTensor()), _cpu.ToArray(curBufC.AsTensor()), "the current buffers are only read");
    }

    // ---------------------------------------------------------------- SGD, loss, data

    [TestCase(false)]
    [TestCase(true)]
    public void StandInSgdStepsOnAResnet20ArenaAreBitEqualToTheCpu(bool nesterov)
    {
        var layout = ModelZoo.Describe("resnet20", 10).Parameters;
        using var wG = new Arena(layout, _gpu);
        using var gG = new Arena(layout, _gpu);
        using var vG = new Arena(layout, _gpu);
        using var wC = new Arena(layout, _cpu);
        using var gC = new Arena(layout, _cpu);
        using var vC = new Arena(layout, _cpu);
        int n = (int)wG.All.Length;
        var w0 = _rng.Floats(n);
        wG.FromHost(w0); wC.FromHost(w0);
        vG.FromHost(new float[n]); vC.FromHost(new float[n]);
        for (int step = 0; step < 3; step++)
        {
            var grad = _rng.Floats(n);
            gG.FromHost(grad); gC.FromHost(grad);
            var h = new SgdHyper(0.1f / (step + 1), 0.9f, 5e-4f, nesterov);
            _gpu.SgdStep(wG.All, gG.All, vG.All, h);
            _cpu.SgdStep(wC.All, gC.All, vC.All, h);
        }
        Same(vG.ToHost(), vC.ToHost(), $"velocity ({_rng})");
        Same(wG.ToHost(), wC.ToHost(), $"weights ({_rng})");
    }

    [Test]
    public void StandInLossAndAccuracyAccumulateLikeTheCpu()
    {
        var statsG = _gpu.AllocateTensor(new TensorShape(2));
        var statsC = _cpu.AllocateTensor(new TensorShape(2));
        _gpu.Fill(statsG, 0f);
        _cpu.Fill(statsC, 0f);
        // Growing batches: the backend's per-row scratch is reallocated on the way.
        foreach (int n in new[] { 7, 256, 1000 })
        {
            var z = _rng.Floats(n * 10, -4, 4);
            var labels = _rng.Ints(n, 0, 10);
            var zG = _gpu.AllocateTensor(new TensorShape(n, 10));
            var zC = _cpu.AllocateTensor(new TensorShape(n, 10));
            _gpu.Upload<float>(z, zG);
            _cpu.Upload<float>(z, zC);
            var lG = _gpu.AllocateTensor(new TensorShape(n), DType.Int32);
            var lC = _cpu.AllocateTensor(new TensorShape(n), DType.Int32);
            _gpu.Upload<int>(labels, lG);
            _cpu.Upload<int>(labels, lC);
            var dG = _gpu.AllocateTensor(new TensorShape(n, 10));
            var dC = _cpu.AllocateTensor(new TensorShape(n, 10));
            _gpu.SoftmaxCrossEntropy(zG, lG, dG, statsG);
            _cpu.SoftmaxCrossEntropy(zC, lC, dC, statsC);
            Support.Close.Check(_gpu.ToArray(dG), _cpu.ToArray(dC), 1e-7, 1e-5, $"gradient n={n} ({_rng})");
        }
        var sg = _gpu.ToArray(statsG);
        var sc = _cpu.ToArray(statsC);
        Assert.That(sg[0], Is.EqualTo(sc[0]).Within(1e-5).Percent, $"summed loss ({_rng})");
        Assert.That(sg[1], Is.EqualTo(sc[1]), "correct predictions");
    }

    [TestCase(PaddingMode.Zero)]
    [TestCase(PaddingMode.Reflect)]
    public void StandInAugmentedBatchesAreBitIdenticalToTheCpu(PaddingMode padding)
    {
        var (train, _) = SyntheticCifar.Generate(300, 10, (ulong)_rng.Seed);
        using var cpuData = new DeviceDataset(train, _cpu);
        using var gpuData = new DeviceDataset(train, _gpu);
        var spec = new AugmentSpec { Padding = padding, Seed = (ulong)_rng.Seed };
        using var cpuLoader = new BatchLoader(cpuData, 128, true, spec, (ulong)_rng.Seed);
        using var gpuLoader = new BatchLoader(gpuData, 128, true, spec, (ulong)_rng.Seed);
        var xc = _cpu.AllocateTensor(TensorShape.Nchw(128, 3, 32, 32));
        var xg = _gpu.AllocateTensor(TensorShape.Nchw(128, 3, 32, 32));
        var lc = _cpu.AllocateTensor(new TensorShape(128), DType.Int32);
        var lg = _gpu.AllocateTensor(new TensorShape(128), DType.Int32);
        foreach (int epoch in new[] { 0, 5 })
        {
            cpuLoader.BeginEpoch(epoch);
            gpuLoader.BeginEpoch(epoch);
            for (int b = 0; b < cpuLoader.BatchCount; b++)
            {
                int n = cpuLoader.Load(b, xc, lc);
                Assert.That(gpuLoader.Load(b, xg, lg), Is.EqualTo(n), "batch size (the last one is smaller)");
                Same(_gpu.ToArray(xg.WithBatch(n)), _cpu.ToArray(xc.WithBatch(n)), $"epoch {epoch} batch {b} ({_rng})");
                var li = new int[n];
                var lj = new int[n];
                _cpu.Download<int>(lc.WithBatch(n), li);
                _gpu.Download<int>(lg.WithBatch(n), lj);
                Assert.That(lj, Is.EqualTo(li), "labels");
            }
        }
    }

    // ---------------------------------------------------------------- lifetimes and contexts

    [Test]
    public void StandInBuffersAreFreedWithTheirOwners()
    {
        var before = StandIn.Memory();
        using (var net = ModelZoo.Create("resnet20", 10, _gpu, 4, 1))
        using (var avg = new WeightAverager(net))
        {
            avg.Update();
            Assert.That(StandIn.Memory().Live, Is.GreaterThan(before.Live), "the network, its arenas and the plan's tables are device memory");
        }
        var after = StandIn.Memory();
        Assert.That(after.Live, Is.EqualTo(before.Live), "every allocation of the network and the averager was freed");
        Assert.That(after.Bytes, Is.EqualTo(before.Bytes));
    }

    [Test]
    public void StandInBufferFreedByTheFinalizerGoesInItsOwnContext()
    {
        var before = StandIn.Memory().Live;
        AllocateAndDrop(_gpu);
        Assert.That(StandIn.Memory().Live, Is.EqualTo(before + 1));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.That(StandIn.Memory().Live, Is.EqualTo(before), "freed on the finalizer thread, which has no context of its own");

        // Ops from a thread that never made the context current work too.
        float[]? seen = null;
        var t = new Thread(() =>
        {
            var x = _gpu.AllocateTensor(new TensorShape(3));
            _gpu.Upload<float>([1f, -2f, 3f], x);
            var y = _gpu.AllocateTensor(new TensorShape(3));
            _gpu.ReluForward(x, y);
            seen = _gpu.ToArray(y);
        });
        t.Start();
        t.Join();
        Assert.That(seen, Is.EqualTo(new[] { 1f, 0f, 3f }));
    }

    private static void AllocateAndDrop(Backend b) => b.Allocate(1000);

    // ---------------------------------------------------------------- the stand-in's own checks

    [Test]
    public void StandInReportsAKernelWritingPastTheEndAndTheContextStaysFailed()
    {
        var d = _gpu.Device.Driver;
        _gpu.Device.MakeCurrent();
        var ptx = Encoding.ASCII.GetBytes(".version 7.8\n.target sm_90\n.visible .entry selftest_write_past_end(\n.param .u64 p, .param .u32 n)\n{ ret; }\n\0");
        IntPtr module, function;
        fixed (byte* p = ptx) d.Check(d.cuModuleLoadData(&module, p));
        fixed (byte* name = Encoding.ASCII.GetBytes("selftest_write_past_end\0")) d.Check(d.cuModuleGetFunction(&function, module, name));
        var buffer = _gpu.Allocate(1000);
        ulong address = ((CudaBuffer)buffer).Pointer;
        int n = 1000;
        void** args = stackalloc void*[2];
        args[0] = &address;
        args[1] = &n;
        var r = d.cuLaunchKernel(function, 1, 1, 1, 32, 1, 1, 0, IntPtr.Zero, args, null);
        Assert.That(r, Is.EqualTo(CuResult.IllegalAddress));
        Assert.That(d.Describe(r, "launch"), Does.Contain("past the end of the allocation"));
        var sticky = Assert.Throws<CudaException>(() => _gpu.Synchronize());
        Assert.That(sticky!.DriverResult, Is.EqualTo(CuResult.IllegalAddress), "a failed kernel leaves the context failed, as on a GPU");

        // Releasing the context (the backend) resets the device: the next backend works.
        _gpu.Dispose();
        _gpu = StandIn.CreateBackend();
        Assert.DoesNotThrow(() => _gpu.Synchronize());
    }

    [Test]
    public void StandInRejectsAKernelPointerOutsideEveryAllocation()
    {
        var d = _gpu.Device.Driver;
        _gpu.Device.MakeCurrent();
        var function = _gpu.KernelLibrary.Function(Kernels.ReluForward);
        var buffer = _gpu.Allocate(64);
        ulong x = ((CudaBuffer)buffer).Pointer, y = x + (1 << 20);
        long n = 64;
        void** args = stackalloc void*[3];
        args[0] = &x;
        args[1] = &y;
        args[2] = &n;
        var r = d.cuLaunchKernel(function, 1, 1, 1, 256, 1, 1, 0, IntPtr.Zero, args, null);
        Assert.That(r, Is.EqualTo(CuResult.InvalidValue));
        Assert.That(d.Describe(r, "launch"), Does.Contain("pointer argument 1").And.Contain("not inside a live allocation"));
        Assert.DoesNotThrow(() => _gpu.Synchronize(), "a launch refused up front does not fail the context");
    }

    [Test]
    public void StandInRejectsCopiesOutsideTheAllocation()
    {
        var buffer = _gpu.Allocate(10);
        var view = new Tensor(buffer, 5, new TensorShape(5));
        Assert.DoesNotThrow(() => _gpu.Upload<float>(new float[5], view));
        // A copy that reaches past the end of the allocation (the backend allocates at least 256 bytes) is refused.
        var d = _gpu.Device.Driver;
        _gpu.Device.MakeCurrent();
        var data = new float[8];
        fixed (float* p = data)
        {
            var r = d.cuMemcpyHtoD(((CudaBuffer)buffer).Pointer + 240, p, 32);
            Assert.That(r, Is.EqualTo(CuResult.InvalidValue));
        }
    }
}
