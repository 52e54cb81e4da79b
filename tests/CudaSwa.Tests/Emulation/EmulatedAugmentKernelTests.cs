using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/augment.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedAugmentKernelTests : EmulatedKernelTests
{
    [TestCase(Rounding.Separate, 3, PaddingMode.Zero, true, true, 64)]
    [TestCase(Rounding.Fused, 3, PaddingMode.Reflect, true, true, 64)]
    [TestCase(Rounding.Separate, 1, PaddingMode.Zero, false, true, 17)]
    [TestCase(Rounding.Separate, 4, PaddingMode.Reflect, true, false, 9)]
    [TestCase(Rounding.Fused, 3, PaddingMode.Zero, true, true, 1000)]
    public void EmulatedAugmentationMatchesItsTwinBitForBit(Rounding rounding, int channels, PaddingMode padding, bool crop, bool flip, int batch)
    {
        var lib = EmulationLibrary.Require(rounding);
        int count = Math.Max(200, batch), h = 32, w = 32;
        var images = new byte[count * channels * h * w];
        _rng.Random.NextBytes(images);
        var sourceLabels = _rng.Ints(count, 0, 10);
        var indices = _rng.Ints(batch, 0, count);
        var spec = new AugmentSpec
        {
            Pad = 4, Padding = padding, Crop = crop, Flip = flip, Seed = (ulong)_rng.Random.NextInt64(),
            Mean = _rng.Floats(channels, 0.2f, 0.6f), Std = _rng.Floats(channels, 0.1f, 0.4f),
        };
        int epoch = _rng.Random.Next(300);
        var scale = new float[4];
        var shift = new float[4];
        for (int ch = 0; ch < channels; ch++)
        {
            scale[ch] = 1f / (255f * spec.Std[ch]);
            shift[ch] = -spec.Mean[ch] / spec.Std[ch];
        }
        using var himg = HostArray<byte>.Of(images);
        using var hsrc = HostArray<int>.Of(sourceLabels);
        using var hidx = HostArray<int>.Of(indices);
        using var hx = new HostArray<float>(batch * channels * h * w);
        using var hlab = new HostArray<int>(batch);
        lib.Launch(Kernels.AugmentBatch, Grid(hx.Length), Block, new(himg.Ptr, hsrc.Ptr, hidx.Ptr, hx.Ptr, hlab.Ptr,
            batch, channels, h, w, spec.Pad, spec.Crop, spec.Flip, spec.Padding == PaddingMode.Reflect, epoch, (uint)spec.Seed, (uint)(spec.Seed >> 32),
            scale[0], scale[1], scale[2], scale[3], shift[0], shift[1], shift[2], shift[3]));

        var timages = _cpu.AllocateTensor(TensorShape.Nchw(count, channels, h, w), DType.UInt8);
        _cpu.Upload<byte>(images, timages);
        var tx = _cpu.AllocateTensor(TensorShape.Nchw(batch, channels, h, w));
        var tlab = _cpu.AllocateTensor(new TensorShape(batch), DType.Int32);
        _cpu.AugmentBatch(timages, CpuInts(sourceLabels), CpuInts(indices), spec, epoch, tx, tlab);
        Same(hx.Span, Read(tx), $"augment_batch {padding} crop={crop} flip={flip} ({_rng})");
        var labels = new int[batch];
        _cpu.Download<int>(tlab, labels);
        Assert.That(hlab.ToArray(), Is.EqualTo(labels), "labels");
    }
}
