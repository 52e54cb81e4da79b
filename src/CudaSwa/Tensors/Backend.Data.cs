namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- data

    /// <summary>
    /// Builds a batch from a uint8 image set kept on this backend: for each position b, sample
    /// indices[b] is padded, cropped, flipped (Philox keyed by spec.Seed, epoch and the sample
    /// index) and normalised into x[b]; labels[b] is copied from sourceLabels.
    /// images (count, 3, 32, 32) uint8; sourceLabels (count) int32; indices (B) int32; x (B,3,32,32); labels (B) int32.
    /// </summary>
    public void AugmentBatch(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels)
    {
        Own(images, nameof(images)); Own(sourceLabels, nameof(sourceLabels)); Own(indices, nameof(indices));
        Own(x, nameof(x)); Own(labels, nameof(labels));
        if (images.DType != DType.UInt8) throw new ArgumentException($"Images must be uint8; got {images.DType}.", nameof(images));
        if (sourceLabels.DType != DType.Int32 || indices.DType != DType.Int32 || labels.DType != DType.Int32)
            throw new ArgumentException("Labels and indices must be int32.");
        if (images.Shape.Rank != 4 || x.Shape.Rank != 4 || images.Shape.C != x.Shape.C || images.Shape.H != x.Shape.H || images.Shape.W != x.Shape.W)
            throw new ArgumentException($"Images {images.Shape} and batch {x.Shape} must both be (N, C, H, W) with equal C, H, W.");
        RequireLength(sourceLabels, images.Shape.N, nameof(sourceLabels), "one label per image");
        RequireLength(indices, x.Shape.N, nameof(indices), "one index per batch position");
        RequireLength(labels, x.Shape.N, nameof(labels), "one label per batch position");
        if (spec.Mean.Length != x.Shape.C || spec.Std.Length != x.Shape.C)
            throw new ArgumentException($"Normalisation needs {x.Shape.C} means and stds; got {spec.Mean.Length} and {spec.Std.Length}.", nameof(spec));
        if (spec.Pad < 0 || spec.Pad >= x.Shape.H)
            throw new ArgumentOutOfRangeException(nameof(spec), $"Padding must be in [0, {x.Shape.H}); got {spec.Pad}.");
        Wrote(x); Wrote(labels);
        using (new OpTimer(this, "AugmentBatch")) AugmentBatchCore(images, sourceLabels, indices, spec, epoch, x, labels);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="AugmentBatch"/>; the arguments are already validated.</summary>
    private protected abstract void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels);
}
