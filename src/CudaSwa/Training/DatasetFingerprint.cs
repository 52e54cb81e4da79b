using CudaSwa.Data;

namespace CudaSwa.Training;

/// <summary>
/// Identifies a run's data: sizes and a hash of both splits, saved in the state so that a resume on
/// other data is refused (and the older form, which runs saved before every byte was hashed hold).
/// </summary>
internal static class DatasetFingerprint
{
    /// <summary>
    /// Sizes and an xxHash128 of every label and every pixel of both splits (after subsets), so a
    /// resume on data that changed in any byte is refused. About 10 GB/s: tens of milliseconds for
    /// CIFAR, next to seconds or minutes per epoch.
    /// </summary>
    public static string Compute(ImageDataset train, ImageDataset test)
    {
        var hash = new System.IO.Hashing.XxHash128();
        foreach (var d in new[] { train, test })
        {
            hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(d.Labels.AsSpan()));
            hash.Append(d.Images);
        }
        return $"{Version}{train.Count}+{test.Count}:{Convert.ToHexString(hash.GetCurrentHash()).ToLowerInvariant()}";
    }

    private const string Version = "xxh128:";

    /// <summary>The fingerprint runs saved before every byte was hashed (labels and the first 64 KiB of pixels, FNV-1a).</summary>
    public static string Legacy(ImageDataset train, ImageDataset test)
    {
        ulong h = 14695981039346656037UL;
        void Mix(ReadOnlySpan<byte> bytes) { foreach (byte b in bytes) h = (h ^ b) * 1099511628211UL; }
        foreach (var d in new[] { train, test })
        {
            Mix(System.Runtime.InteropServices.MemoryMarshal.AsBytes(d.Labels.AsSpan()));
            Mix(d.Images.AsSpan(0, Math.Min(d.Images.Length, 1 << 16)));
        }
        return $"{train.Count}+{test.Count}:{h:x16}";
    }

    /// <summary>Whether <paramref name="fingerprint"/> is of the current form (else <see cref="Legacy"/> made it).</summary>
    public static bool IsCurrent(string fingerprint) => fingerprint.StartsWith(Version, StringComparison.Ordinal);
}
