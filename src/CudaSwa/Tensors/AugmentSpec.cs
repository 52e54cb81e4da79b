namespace CudaSwa.Tensors;

/// <summary>How an image is padded before the random crop.</summary>
public enum PaddingMode
{
    /// <summary>Zero padding, as in the SWA paper and most CIFAR code.</summary>
    Zero,
    /// <summary>Reflection padding (fastai's choice, which changed its results).</summary>
    Reflect,
}

/// <summary>
/// Train-time augmentation of a CIFAR batch: pad, random crop back to the image size, random
/// horizontal flip, per-channel normalisation. Random choices come from Philox keyed by
/// (seed, epoch, sample index), so every backend makes the same crops and flips.
/// </summary>
public sealed record AugmentSpec
{
    /// <summary>Pixels of padding on each side before the random crop (default 4).</summary>
    public int Pad { get; init; } = 4;
    /// <summary>How the padded border is filled (zeros by default).</summary>
    public PaddingMode Padding { get; init; } = PaddingMode.Zero;
    /// <summary>Take a random crop of the image size from the padded image; when false, the image keeps its position.</summary>
    public bool Crop { get; init; } = true;
    /// <summary>Flip each image horizontally with probability 1/2.</summary>
    public bool Flip { get; init; } = true;
    /// <summary>Per-channel mean subtracted after scaling pixels to [0, 1] (default: CIFAR-10's).</summary>
    public float[] Mean { get; init; } = [0.4914f, 0.4822f, 0.4465f];
    /// <summary>Per-channel standard deviation the centred values are divided by (default: CIFAR-10's).</summary>
    public float[] Std { get; init; } = [0.2470f, 0.2435f, 0.2616f];
    /// <summary>Keys the random crops and flips; a <see cref="CudaSwa.Data.BatchLoader"/> replaces it with its own seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>The same normalisation with no randomness: what evaluation uses.</summary>
    public AugmentSpec ForEvaluation() => this with { Crop = false, Flip = false };
}
