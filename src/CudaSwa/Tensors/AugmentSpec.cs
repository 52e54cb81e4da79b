namespace CudaSwa.Tensors;

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
    public int Pad { get; init; } = 4;
    public PaddingMode Padding { get; init; } = PaddingMode.Zero;
    public bool Crop { get; init; } = true;
    public bool Flip { get; init; } = true;
    public float[] Mean { get; init; } = [0.4914f, 0.4822f, 0.4465f];
    public float[] Std { get; init; } = [0.2470f, 0.2435f, 0.2616f];
    public ulong Seed { get; init; }

    /// <summary>The same normalisation with no randomness: what evaluation uses.</summary>
    public AugmentSpec ForEvaluation() => this with { Crop = false, Flip = false };
}
