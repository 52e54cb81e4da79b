using CudaSwa.Devices;
using CudaSwa.Native;
using CudaSwa.Tests.Cli;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>Without a GPU, nothing crashes: the bindings fail to load gracefully and say why in one line.</summary>
public class CudaAvailabilityTests
{
    [Test]
    public void InfoExplainsCudaInOneLine()
    {
        var r = CliRunner.Run("info");
        Assert.That(r.ExitCode, Is.Zero, r.All);
        var lines = r.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var cuda = lines.Where(l => l.StartsWith("CUDA", StringComparison.Ordinal) || l.StartsWith("device:", StringComparison.Ordinal)).ToList();
        Assert.That(cuda, Is.Not.Empty, r.Output);
        var unavailable = lines.Where(l => l.StartsWith("CUDA unavailable:", StringComparison.Ordinal)).ToList();
        if (BackendFactory.TryCreateCuda(0, out var backend, out _))
        {
            backend!.Dispose();
            Assert.That(unavailable, Is.Empty, r.Output);
            Assert.That(r.Output, Does.Contain("cuDNN").And.Contain("cuBLAS").And.Contain("NVRTC"));
        }
        else
        {
            Assert.That(unavailable, Has.Count.EqualTo(1), "exactly one line says why");
            Assert.That(unavailable[0].Length, Is.GreaterThan("CUDA unavailable: ".Length + 10), "with a reason");
        }
    }

    [Test]
    public void AutoFallsBackToTheCpuAndSaysWhy()
    {
        using var backend = BackendFactory.Create("auto", out string note);
        if (backend is CudaSwa.Cuda.CudaBackend) Assert.That(note, Does.Contain("running on cuda:0"));
        else Assert.That(note, Does.StartWith("CUDA unavailable:").And.EndWith("running on the CPU"));
    }

    [Test]
    public void AskingForCudaWithoutOneIsAClearError()
    {
        if (BackendFactory.TryCreateCuda(0, out var b, out _)) { b!.Dispose(); Assert.Ignore("A GPU is present: this checks the no-GPU path."); }
        var ex = Assert.Throws<DeviceUnavailableException>(() => BackendFactory.Create("cuda", out _));
        Assert.That(ex!.Message, Does.Contain("Device 'cuda' was asked for, but CUDA is unavailable"));
        Assert.That(ex.Reason, Does.Contain("libcuda.so.1"));
        Assert.That(NativeLibraries.Trace(NativeLibraries.Cuda), Does.Contain("libcuda.so.1"));
    }
}
