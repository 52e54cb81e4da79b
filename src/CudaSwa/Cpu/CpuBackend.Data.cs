using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    private protected override void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels)
    {
        int b = x.Shape.N, c = x.Shape.C, h = x.Shape.H, w = x.Shape.W;
        int count = images.Shape.N;
        nint pImg = (nint)CpuTensor.BytePtr(images), pOut = (nint)CpuTensor.Ptr(x);
        int* idx = CpuTensor.IntPtr(indices);
        int* srcLabels = CpuTensor.IntPtr(sourceLabels);
        int* outLabels = CpuTensor.IntPtr(labels);
        var scale = new float[c];
        var shift = new float[c];
        for (int ch = 0; ch < c; ch++)
        {
            scale[ch] = 1f / (255f * spec.Std[ch]);
            shift[ch] = -spec.Mean[ch] / spec.Std[ch];
        }
        for (int i = 0; i < b; i++)
        {
            if ((uint)idx[i] >= (uint)count)
                throw new ArgumentOutOfRangeException(nameof(indices), $"Sample index {idx[i]} at batch position {i} is outside 0..{count - 1}.");
            outLabels[i] = srcLabels[idx[i]];
        }
        CpuParallel.For(b, i =>
        {
            int sample = ((int*)idx)[i];
            var (dx, dy, flip) = Philox.AugmentDraw(spec.Seed, epoch, sample, spec.Pad);
            if (!spec.Crop) { dx = spec.Pad; dy = spec.Pad; }
            if (!spec.Flip) flip = false;
            byte* src = (byte*)pImg + (long)sample * c * h * w;
            float* dst = (float*)pOut + (long)i * c * h * w;
            for (int ch = 0; ch < c; ch++)
            for (int r = 0; r < h; r++)
            {
                int sr = r + dy - spec.Pad;
                bool rowInside = sr >= 0 && sr < h;
                if (!rowInside && spec.Padding == PaddingMode.Reflect) { sr = Reflect(sr, h); rowInside = true; }
                for (int col = 0; col < w; col++)
                {
                    int sc = (flip ? w - 1 - col : col) + dx - spec.Pad;
                    bool inside = rowInside && sc >= 0 && sc < w;
                    if (rowInside && !inside && spec.Padding == PaddingMode.Reflect) { sc = Reflect(sc, w); inside = true; }
                    float raw = inside ? src[((long)ch * h + sr) * w + sc] : 0f;
                    dst[((long)ch * h + r) * w + col] = raw * scale[ch] + shift[ch];
                }
            }
        });
    }

    // ---------------------------------------------------------------- augment
    // Batch assembly with augmentation from a uint8 image set (CPU twin of kernels/augment.cu). Crop then
    // flip, as torchvision's RandomCrop(padding) followed by RandomHorizontalFlip: out[c,i,j] = padded[c,
    // i+dy, (W-1-j)+dx] when flipped, padded[c, i+dy, j+dx] otherwise; padded pixels are raw 0 (then
    // normalised) for zero padding, mirrored pixels for reflect.

    /// <summary>Mirror index without repeating the edge (numpy/torchvision "reflect").</summary>
    internal static int Reflect(int i, int n) => i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
}
