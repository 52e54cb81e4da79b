using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>
/// The base of the emulated kernel tests, one fixture per .cu file: every kernel of kernels/*.cu, the unchanged source built for the CPU (EmulationLibrary), run
/// with the engine's launch shapes (256-thread blocks, grids capped as on a 4-SM device so large
/// inputs take several grid-stride passes) and compared with its C# CPU twin on fresh random
/// inputs: bit for bit where the two are meant to agree exactly — in both rounding modes, so the
/// result cannot depend on whether the GPU compiler fuses a multiply and an add — and within
/// stated tolerances where the kernel's summation order or exp/log differ from the twin's.
/// Ignored with the reason where clang++-14 is absent.
/// </summary>
[NonParallelizable]
[Category("Emulated")]
public abstract class EmulatedKernelTests
{
    protected const uint Block = 256;
    protected const int Sms = 4;
    protected CpuBackend _cpu = null!;
    protected Fresh _rng = null!;

    [OneTimeSetUp]
    public void CreateCpu() => _cpu = new CpuBackend();

    [OneTimeTearDown]
    public void ReleaseCpu() => _cpu.Dispose();

    [SetUp]
    public void NewRandom() => _rng = new Fresh();

    /// <summary>The engine's grid for a grid-stride kernel over n items (CudaBackend.Grid) on a 4-SM device.</summary>
    protected static uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, Sms * 32);

    protected static uint GridExact(long threads) => (uint)((threads + Block - 1) / Block);

    protected Tensor Cpu(float[] values, params int[] shape)
    {
        var t = _cpu.AllocateTensor(new TensorShape(shape.Length == 0 ? [values.Length] : shape));
        _cpu.Upload<float>(values, t);
        return t;
    }

    protected Tensor CpuInts(int[] values)
    {
        var t = _cpu.AllocateTensor(new TensorShape(values.Length), DType.Int32);
        _cpu.Upload<int>(values, t);
        return t;
    }

    protected float[] Read(Tensor t) => _cpu.ToArray(t);

    /// <summary>Bit-for-bit equality, reporting the first differing element.</summary>
    internal static void Same(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        for (int i = 0; i < actual.Length; i++)
            if (BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                Assert.Fail($"{what}: element {i} of {actual.Length} differs: emulated kernel {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):x8}), " +
                            $"CPU twin {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):x8})");
    }
}

/// <summary>The deliberately faulty kernels of emulation_selftest.cu (not part of the engine).</summary>
internal static class SelfTest
{
    public static readonly KernelSpec<OneBuffer> Deadlock = new("emulation_selftest.cu", "selftest_deadlock");
    public static readonly KernelSpec<OneBuffer> ShuffleFromReturnedLane = new("emulation_selftest.cu", "selftest_shuffle_from_returned_lane");
    public static readonly KernelSpec<BufferAndLength> WritePastEnd = new("emulation_selftest.cu", "selftest_write_past_end");
    public static readonly KernelSpec<MulAddArgs> MulAdd = new("emulation_selftest.cu", "selftest_mul_add");
    public static readonly KernelSpec<TwoBuffers> BlockSum = new("emulation_selftest.cu", "selftest_block_sum");
    public static readonly KernelSpec<OneBuffer> WarpPrimitives = new("emulation_selftest.cu", "selftest_warp_primitives");

    internal readonly record struct OneBuffer(DevicePtr p);
    internal readonly record struct TwoBuffers(DevicePtr x, DevicePtr y);
    internal readonly record struct BufferAndLength(DevicePtr p, int n);
    internal readonly record struct MulAddArgs(DevicePtr a, DevicePtr b, DevicePtr c, DevicePtr plain, DevicePtr pinned, int n);
}
