using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Layers;

namespace CudaSwa.Averaging;

/// <summary>
/// SWA after the fact: the equal-weight mean of saved weights (a run's epoch weights, checkpoints,
/// or any safetensors of the same model), folded in the order given with the update the trainer
/// uses, so averaging a run's SWA-phase epoch weights gives its SWA average up to float rounding.
/// BN statistics are then recomputed for the average (<see cref="BatchNormRecomputePass"/>) or,
/// when asked, averaged along with the weights.
/// </summary>
public static class PostHocAverage
{
    /// <summary>
    /// Loads each of <paramref name="files"/> into <paramref name="network"/>'s own arenas and folds
    /// it into a new SWA average, which the caller owns (bind it with <see cref="WeightAverager.Bind"/>
    /// to recompute BN statistics and evaluate it). Every file must hold every parameter of the
    /// network and nothing else, finite values only, and — when its metadata names a model — this
    /// network's; a file that does not is refused with a <see cref="DataFormatException"/> naming it
    /// (the partial average is freed). <paramref name="progress"/> gets (files done, files).
    /// </summary>
    public static WeightAverager Average(Network network, IReadOnlyList<string> files, bool averageStatistics = false, Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(files);
        if (files.Count == 0) throw new ArgumentException("Give at least one weights file to average.", nameof(files));
        // One file in memory at a time (a WideResNet's weights are 146 MB; averaging dozens must not
        // hold them all): each is read, checked and folded in turn. A bad file stops the average
        // before anything is written.
        var averager = new WeightAverager(network, new AveragingOptions { Kind = AveragingKind.Swa, AverageBatchNormStatistics = averageStatistics });
        try
        {
            for (int i = 0; i < files.Count; i++)
            {
                ModelWeights.Load(Check(network, files[i]), network.OwnParameters, network.OwnBuffers, files[i], requireBuffers: averageStatistics);
                averager.Update();
                progress?.Invoke(i + 1, files.Count);
            }
            return averager;
        }
        catch
        {
            averager.Dispose();
            throw;
        }
    }

    private static SafeTensors.Contents Check(Network network, string file)
    {
        if (!File.Exists(file)) throw new DataFormatException($"'{file}' does not exist.");
        var contents = SafeTensors.Read(file);
        if (contents.Metadata.TryGetValue("model", out var model) && !string.Equals(model, network.ModelName, StringComparison.OrdinalIgnoreCase))
            throw new DataFormatException($"'{file}' holds weights of {model}, not of {network.ModelName}: every averaged file must be of one model.");
        foreach (var t in contents.Tensors.Values)
        {
            int bad = Array.FindIndex(t.Data, v => !float.IsFinite(v));
            if (bad >= 0) throw new DataFormatException($"'{file}': tensor '{t.Name}' holds {t.Data[bad]} at element {bad} (weights of a diverged run cannot be averaged).");
        }
        return contents;
    }
}
