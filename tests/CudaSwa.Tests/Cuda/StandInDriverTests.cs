using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
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
[Category("StandIn")]
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
    public void StandInBackendIsTheCudaBackendOverTheStandInStack()
    {
        Assert.That(_gpu.DeviceName, Does.Contain("stand-in"));
        Assert.That(_gpu.HasVendorLibraries, Is.True);
        Assert.That(_gpu.Device.Driver.Path, Is.EqualTo(EmulationLibrary.Require().Path), "loaded by path through CuDriver.FromFile");
        Assert.That(_gpu.Libraries.Nvrtc?.Path, Is.EqualTo(Toolchain.Nvrtc(out _)), "kernels compiled by the real NVRTC");
        Assert.That(_gpu.Libraries.Cudnn?.Path, Is.EqualTo(StandIn.VendorFiles().Cudnn), "the stand-in cuDNN, by path");
        Assert.That(_gpu.Libraries.Cublas?.Path, Is.EqualTo(StandIn.VendorFiles().Cublas), "the stand-in cuBLAS, by path");
        Assert.That(_gpu.KernelLibrary.Cubin, Is.True, "a CUBIN for the stand-in's sm_90");
    }

    [Test]
    public void StandInKernelsOnlyBackendSaysWhatAnOpNeeds()
    {
        using var kernelsOnly = StandIn.CreateKernelsOnlyBackend();
        Assert.That(kernelsOnly.HasVendorLibraries, Is.False);
        var e = Assert.Throws<NotSupportedException>(() =>
            kernelsOnly.ConvolutionForward(kernelsOnly.AllocateTensor(TensorShape.Nchw(1, 1, 3, 3)), kernelsOnly.AllocateTensor(TensorShape.Nchw(1, 1, 3, 3)),
                kernelsOnly.AllocateTensor(TensorShape.Nchw(1, 1, 3, 3)), new ConvSpec(1, 1)));
        Assert.That(e!.Message, Does.Contain("cuDNN"), "an op a kernels-only backend cannot run says what it needs");
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







    // ---------------------------------------------------------------- lifetimes and contexts

    [Test]
    public void StandInBuffersAreFreedWithTheirOwners()
    {
        // The backend keeps one cuDNN workspace, grown to the largest convolution planned: plan them first.
        using (ModelZoo.Create("resnet20", 10, _gpu, 4, 1)) { }
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
        _gpu.Dispose();
        Assert.That(StandIn.Memory().Live, Is.Zero, "disposing the backend frees its workspace and everything else");
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

    // ---------------------------------------------------------------- faults and launch-blocking mode

    [Test]
    public void StandInLaunchBlockingWaitsAfterEveryVendorCallAndNamesIt()
    {
        var x = _gpu.AllocateTensor(TensorShape.Nchw(2, 3, 9, 9));
        var w = _gpu.AllocateTensor(TensorShape.Nchw(4, 3, 3, 3));
        var y = _gpu.AllocateTensor(TensorShape.Nchw(2, 4, 9, 9));
        _gpu.Upload<float>(_rng.Floats(486), x);
        _gpu.Upload<float>(_rng.Floats(108), w);
        var spec = new ConvSpec(1, 1);
        _gpu.ConvolutionForward(x, w, y, spec); // plans the convolution
        ulong before = StandIn.Synchronizations();
        _gpu.ConvolutionForward(x, w, y, spec);
        Assert.That(StandIn.Synchronizations(), Is.EqualTo(before), "asynchronous by default: no wait after a cuDNN call");

        _gpu.LaunchBlocking = true;
        _gpu.ConvolutionForward(x, w, y, spec);
        Assert.That(StandIn.Synchronizations(), Is.EqualTo(before + 1), "launch-blocking: one wait after the call");
        StandIn.FailNextSynchronize("an illegal address in earlier work");
        var e = Assert.Throws<CudaException>(() => _gpu.ConvolutionForward(x, w, y, spec));
        Assert.That(e!.Message, Does.Contain("cudnnConvolutionForward").And.Contain("launch-blocking").And.Contain("an illegal address in earlier work"));
    }

    [Test]
    public void StandInDisposingAnAveragerAfterAFaultKeepsTheFirstError()
    {
        using var net = ModelZoo.Create("resnet8", 10, _gpu, 2, 1);
        var e = Assert.Throws<CudaException>(() =>
        {
            using var avg = new WeightAverager(net);
            avg.Update();
            _gpu.LaunchBlocking = true;
            StandIn.FailNextSynchronize("the first fault");
            avg.Update(); // its launch's wait fails, naming the kernel; the averager's disposal then waits on a failed device too
        });
        Assert.That(e!.Message, Does.Contain("run with launch-blocking").And.Contain("the first fault"),
            $"the error reported is the update's, not the disposal's wait: {e.Message}");
    }

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
        Assert.That(sticky!.DriverError, Is.EqualTo((int)CuResult.IllegalAddress), "a failed kernel leaves the context failed, as on a GPU");

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
