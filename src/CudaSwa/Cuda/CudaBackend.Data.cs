using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- data

    /// <inheritdoc/>
    private protected override void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels)
    {
        Ctx();
        int c = x.Shape.C;
        if (c > 4) throw new NotSupportedException($"On-device augmentation handles up to 4 channels; got {c}.");
        Span<float> scale = stackalloc float[4];
        Span<float> shift = stackalloc float[4];
        for (int ch = 0; ch < c; ch++)
        {
            scale[ch] = 1f / (255f * spec.Std[ch]);   // exactly as the CPU twin computes them
            shift[ch] = -spec.Mean[ch] / spec.Std[ch];
        }
        Launch(Kernels.AugmentBatch, Grid(x.Length), new(P(images), P(sourceLabels), P(indices), P(x), P(labels),
            x.Shape.N, c, x.Shape.H, x.Shape.W, spec.Pad, spec.Crop, spec.Flip, spec.Padding == PaddingMode.Reflect, epoch,
            (uint)spec.Seed, (uint)(spec.Seed >> 32), scale[0], scale[1], scale[2], scale[3], shift[0], shift[1], shift[2], shift[3]));
    }

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of augment.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Data.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<AugmentBatchArgs> AugmentBatch = new("augment.cu", "augment_batch");
    }
}

internal readonly record struct AugmentBatchArgs(DevicePtr images, DevicePtr source_labels, DevicePtr indices, DevicePtr x, DevicePtr labels,
    int batch, int channels, int h, int w, int pad, Flag crop, Flag flip, Flag reflect, int epoch, uint seed_lo, uint seed_hi,
    float scale0, float scale1, float scale2, float scale3, float shift0, float shift1, float shift2, float shift3);
