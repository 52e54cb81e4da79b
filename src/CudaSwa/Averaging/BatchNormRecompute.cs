using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>How BN running statistics are recomputed for averaged weights.</summary>
public enum BatchNormRecomputeMode
{
    /// <summary>
    /// The population mean and unbiased population variance of each BN input over every sample
    /// of the data source (Chan's parallel merge of the per-batch statistics). The default.
    /// </summary>
    Exact,
    /// <summary>
    /// The SWA reference code's bn_update: the cumulative average of per-batch statistics with
    /// each batch weighted by its size (factor b/(n+b)): exact for the mean, the mean of
    /// per-batch unbiased variances for the variance.
    /// </summary>
    SampleWeighted,
    /// <summary>PyTorch's update_bn (momentum None): every batch weighs the same (factor 1/(k+1)).</summary>
    EqualBatches,
    /// <summary>
    /// No recompute: the averaged model keeps BN statistics averaged along with its weights (as a
    /// trainer option; <see cref="BatchNormRecompute.Run"/> itself refuses it).
    /// </summary>
    None,
}

/// <summary>
/// Recomputes the BN running statistics of whatever weights the network is bound to (the SWA
/// model, or any other): reset the statistics, then training-mode forward passes over a data
/// source with a cumulative running-average factor — which is exactly cuDNN's
/// exponentialAverageFactor, so on a GPU the whole pass stays on the device. No gradient storage
/// is touched and each forward stops after the last BN layer.
/// </summary>
public static class BatchNormRecompute
{
    /// <summary>
    /// A recompute's loader is seeded with the run's seed XOR this, so its batch order is
    /// reproducible but not the training order (the trainer and `cudaswa eval` agree on it).
    /// </summary>
    public const ulong LoaderSeedSalt = 0xB17E5EEDUL;

    /// <summary>Runs the recompute; <paramref name="onBatch"/> is called after each batch with (done, total).</summary>
    public static void Run(Network network, BatchLoader loader, int epochKey,
        BatchNormRecomputeMode mode = BatchNormRecomputeMode.Exact, Action<int, int>? onBatch = null) =>
        RunAcrossRanks(network, loader, epochKey, mode, onBatch, Distributed.Collective.Single);

    /// <summary>
    /// <see cref="Run(Network, BatchLoader, int, BatchNormRecomputeMode, Action{int, int}?)"/> shared by
    /// the ranks of <paramref name="collective"/> (each calls it): in <see cref="BatchNormRecomputeMode.Exact"/>
    /// mode rank r runs batches r, r + R, ... whole (a batch's statistics depend on all its samples)
    /// and the ranks' (count, mean, M2) are merged with one all-reduce (Chan's formula in float64),
    /// so every rank ends with the population statistics of all batches; the order-dependent modes
    /// run every batch on every rank.
    /// </summary>
    internal static void RunAcrossRanks(Network network, BatchLoader loader, int epochKey, BatchNormRecomputeMode mode, Action<int, int>? onBatch, Distributed.Collective collective)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(loader);
        if (loader.BatchSize > network.MaxBatch)
            throw new ArgumentException($"Loader batches of {loader.BatchSize} exceed the network's batch size {network.MaxBatch}.");
        if (mode == BatchNormRecomputeMode.None)
            throw new ArgumentException("BatchNormRecomputeMode.None means no recompute; there is nothing to run.", nameof(mode));
        if (network.BatchNormLayers.Count == 0) return;
        var backend = network.Backend;
        network.ResetBuffers();
        var labels = backend.AllocateTensor(new TensorShape(network.MaxBatch), DType.Int32);
        DeviceBuffer? accumulators = null;
        try
        {
            var bns = network.BatchNormLayers;
            var accMean = new Tensor[bns.Count];
            var accM2 = new Tensor[bns.Count];
            if (mode == BatchNormRecomputeMode.Exact)
            {
                long total = bns.Sum(b => 2L * b.Channels);
                accumulators = backend.Allocate(total);
                long at = 0;
                for (int i = 0; i < bns.Count; i++)
                {
                    accMean[i] = new Tensor(accumulators, at, new TensorShape(bns[i].Channels));
                    accM2[i] = new Tensor(accumulators, at + bns[i].Channels, new TensorShape(bns[i].Channels));
                    at += 2L * bns[i].Channels;
                }
            }

            loader.BeginEpoch(epochKey);
            long seen = 0;
            int batches = loader.BatchCount;
            bool shared = collective.Size > 1 && mode == BatchNormRecomputeMode.Exact;
            for (int i = 0; i < batches; i++)
            {
                if (shared && i % collective.Size != collective.Rank) continue;
                int b = loader.Load(i, network.Input(loader.BatchSize), labels);
                if (b < 2)
                    throw new InvalidOperationException($"BN recompute met a batch of {b} sample; batch statistics need at least 2. Use a data source whose size is not 1 more than a multiple of the batch size.");
                double factor = mode == BatchNormRecomputeMode.EqualBatches ? 1.0 / (i + 1) : (double)b / (seen + b);
                network.Forward(b, RunMode.RecomputeBatchNorm, network.LastBatchNormLayer, factor);
                if (mode == BatchNormRecomputeMode.Exact)
                {
                    for (int k = 0; k < bns.Count; k++)
                    {
                        long spatial = (long)bns[k].Inputs[0].Height * bns[k].Inputs[0].Width;
                        backend.BatchNormMergeStatistics(bns[k].SavedMean, bns[k].SavedInvStd, BatchNorm2d.Epsilon,
                            b * spatial, seen * spatial, accMean[k], accM2[k]);
                    }
                }
                seen += b;
                onBatch?.Invoke(i + 1, batches);
            }

            if (shared) seen = MergeAcrossRanks(backend, network, accMean, accM2, seen, collective);
            if (mode == BatchNormRecomputeMode.Exact)
            {
                // var = M2 / (count - 1), written as 0 + (M2 - 0) * 1/(count - 1) with the fused update:
                // one call per distinct count (per feature-map size), over all its layers at once.
                foreach (var group in Enumerable.Range(0, bns.Count).GroupBy(k => seen * bns[k].Inputs[0].Height * bns[k].Inputs[0].Width))
                {
                    var pairs = new List<AveragePair>();
                    foreach (int k in group)
                    {
                        backend.Copy(accMean[k], network.Buffers[bns[k].RunningMeanIndex]);
                        var var = network.Buffers[bns[k].RunningVarIndex];
                        backend.Fill(var, 0f);
                        pairs.Add(new AveragePair(var, accM2[k]));
                    }
                    backend.AverageUpdate(pairs.ToArray(), (float)(1.0 / (group.Key - 1)));
                }
            }
        }
        finally
        {
            labels.Buffer.Dispose();
            accumulators?.Dispose();
        }
    }

    /// <summary>
    /// Merges every rank's per-channel (n, mean, M2) into the population's, in float64: one
    /// all-reduce of [n·mean, M2 + n·mean²] per channel plus the sample counts; then
    /// mean = Σ n·mean / N and M2 = Σ (M2 + n·mean²) − N·mean². Returns N (samples over all ranks).
    /// </summary>
    private static long MergeAcrossRanks(Backend backend, Network network, Tensor[] accMean, Tensor[] accM2, long seen, Distributed.Collective collective)
    {
        var bns = network.BatchNormLayers;
        var sums = new List<double> { seen };
        var hostMean = new float[bns.Count][];
        var hostM2 = new float[bns.Count][];
        for (int k = 0; k < bns.Count; k++)
        {
            double n = (double)seen * bns[k].Inputs[0].Height * bns[k].Inputs[0].Width;
            hostMean[k] = seen > 0 ? backend.ToArray(accMean[k]) : new float[bns[k].Channels];
            hostM2[k] = seen > 0 ? backend.ToArray(accM2[k]) : new float[bns[k].Channels];
            for (int c = 0; c < bns[k].Channels; c++)
            {
                double m = hostMean[k][c];
                sums.Add(n * m);
                sums.Add(hostM2[k][c] + n * m * m);
            }
        }
        var all = sums.ToArray();
        collective.AllReduceSumDouble(all);
        long total = (long)all[0];
        int at = 1;
        for (int k = 0; k < bns.Count; k++)
        {
            double n = (double)total * bns[k].Inputs[0].Height * bns[k].Inputs[0].Width;
            for (int c = 0; c < bns[k].Channels; c++)
            {
                double mean = all[at++] / n;
                double m2 = all[at++] - n * mean * mean;
                hostMean[k][c] = (float)mean;
                hostM2[k][c] = (float)Math.Max(m2, 0);
            }
            backend.Upload<float>(hostMean[k], accMean[k]);
            backend.Upload<float>(hostM2[k], accM2[k]);
        }
        return total;
    }
}
