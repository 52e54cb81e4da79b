using System.Globalization;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// Everything that decides the result of one BN recompute: the mode, the batches (size, padding of
/// the augmentation, the loader's seed) and the epoch key that draws their order and augmentation.
/// The one place a recompute's loader is built — the trainer, the landscape and <c>cudaswa eval</c>
/// all use it — and what swa.safetensors records (<see cref="WriteTo"/>), so a recompute of saved
/// weights can repeat the run's own bit for bit.
/// </summary>
/// <param name="Mode">How the statistics are accumulated.</param>
/// <param name="BatchSize">Samples per batch.</param>
/// <param name="Padding">The augmentation's padding, as in training (BN sees the data as training does).</param>
/// <param name="Seed">The run's seed; the loader uses it salted with <see cref="BatchNormRecompute.LoaderSeedSalt"/>.</param>
/// <param name="EpochKey">The epoch key of the pass (the run's evaluation epoch, counted from 0).</param>
public sealed record BatchNormRecomputePass(BatchNormRecomputeMode Mode, int BatchSize, PaddingMode Padding, ulong Seed, int EpochKey)
{
    private const string Prefix = "bn_recompute_";

    /// <summary>The loader over <paramref name="train"/> that this pass reads (shuffled and augmented as training is).</summary>
    public BatchLoader CreateLoader(DeviceDataset train) =>
        new(train, BatchSize, shuffle: true, new AugmentSpec { Padding = Padding }, Seed ^ BatchNormRecompute.LoaderSeedSalt);

    /// <summary>Recomputes <paramref name="network"/>'s BN statistics with this pass over <paramref name="loader"/> (made by <see cref="CreateLoader"/>).</summary>
    public void Run(Network network, BatchLoader loader, Action<int, int>? onBatch = null) =>
        BatchNormRecompute.Run(network, loader, EpochKey, Mode, onBatch);

    /// <summary>Records the pass in safetensors metadata (keys bn_recompute_*).</summary>
    public void WriteTo(IDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        metadata[Prefix + "mode"] = Mode.ToString();
        metadata[Prefix + "batch"] = BatchSize.ToString(CultureInfo.InvariantCulture);
        metadata[Prefix + "padding"] = Padding.ToString();
        metadata[Prefix + "seed"] = Seed.ToString(CultureInfo.InvariantCulture);
        metadata[Prefix + "epoch_key"] = EpochKey.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The pass recorded in <paramref name="metadata"/> by <see cref="WriteTo"/>; null when none is
    /// (weights from elsewhere, or statistics averaged rather than recomputed). A partial or
    /// malformed record throws <see cref="DataFormatException"/> naming the key.
    /// </summary>
    public static BatchNormRecomputePass? ReadFrom(IReadOnlyDictionary<string, string> metadata, string file)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!metadata.Keys.Any(k => k.StartsWith(Prefix, StringComparison.Ordinal))) return null;
        string Get(string key) => metadata.TryGetValue(Prefix + key, out var v) ? v
            : throw new DataFormatException($"{file}: metadata records a BN recompute but lacks '{Prefix + key}'.");
        T Parse<T>(string key, Func<string, (bool, T)> parse)
        {
            string text = Get(key);
            var (ok, value) = parse(text);
            return ok ? value : throw new DataFormatException($"{file}: metadata '{Prefix + key}' is '{text}', which is not valid.");
        }
        var mode = Parse("mode", s => (Enum.TryParse<BatchNormRecomputeMode>(s, out var m) && Enum.IsDefined(m), m));
        int batch = Parse("batch", s => (int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int b) && b >= 2, b));
        var padding = Parse("padding", s => (Enum.TryParse<PaddingMode>(s, out var p) && Enum.IsDefined(p), p));
        ulong seed = Parse("seed", s => (ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v), v));
        int key = Parse("epoch_key", s => (int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int k), k));
        return new BatchNormRecomputePass(mode, batch, padding, seed, key);
    }

    /// <summary>One line for people: mode, batch, padding, seed and epoch key.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Mode}, batch {BatchSize}, {Padding.ToString().ToLowerInvariant()} padding, seed {Seed}, epoch key {EpochKey}");
}
