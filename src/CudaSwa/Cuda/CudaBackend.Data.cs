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
}
