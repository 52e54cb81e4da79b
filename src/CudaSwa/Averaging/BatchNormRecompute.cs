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
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), $"{mode} is not a BN recompute mode.");
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
                network.Forward(b, RunMode.BatchNormRecompute, network.LastBatchNormLayer, factor);
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

            if (shared) MergeAcrossRanks(backend, network, accMean, accM2, seen, collective);
            else if (mode == BatchNormRecomputeMode.Exact)
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
    /// Merges every rank's per-channel (count, mean, M2) into the population's with the merge
    /// synchronised BN uses: each rank writes its row of (count, C means, C M2s) per layer into a
    /// zeroed table, one all-reduce gathers the rows (exact: the other rows are zero), and
    /// <see cref="Backend.BatchNormMergeShards"/> merges them with Chan's formula in rank order, on
    /// the device, writing the population mean and unbiased variance (factor 1) as the running
    /// statistics. Counts are samples × pixels, exact in float32 (a sample count times a power of two).
    /// </summary>
    private static void MergeAcrossRanks(Backend backend, Network network, Tensor[] accMean, Tensor[] accM2, long seen, Distributed.Collective collective)
    {
        var bns = network.BatchNormLayers;
        int ranks = collective.Size;
        long length = bns.Sum(b => (long)ranks * (1 + 2L * b.Channels));
        int widest = bns.Max(b => b.Channels);
        var table = backend.AllocateTensor(new TensorShape(checked((int)length)));
        var scratch = backend.AllocateTensor(new TensorShape(3 * widest));
        try
        {
            backend.Fill(table, 0f);
            long at = 0;
            var rows = new Tensor[bns.Count];
            for (int k = 0; k < bns.Count; k++)
            {
                int c = bns[k].Channels, row = 1 + 2 * c;
                rows[k] = table.Slice(at, ranks * row);
                var mine = rows[k].Slice((long)collective.Rank * row, row);
                backend.Fill(mine.Slice(0, 1), (float)(seen * bns[k].Inputs[0].Height * bns[k].Inputs[0].Width));
                if (seen > 0)
                {
                    backend.Copy(accMean[k], mine.Slice(1, c));
                    backend.Copy(accM2[k], mine.Slice(1 + c, c));
                }
                at += (long)ranks * row;
            }
            collective.AllReduceSum(backend, table, 1f);
            for (int k = 0; k < bns.Count; k++)
            {
                int c = bns[k].Channels;
                backend.BatchNormMergeShards(rows[k], ranks, factor: 1.0, BatchNorm2d.Epsilon,
                    network.Buffers[bns[k].RunningMeanIndex], network.Buffers[bns[k].RunningVarIndex],
                    scratch.Slice(0, c), scratch.Slice(widest, c), scratch.Slice(2L * widest, c));
            }
        }
        finally
        {
            table.Buffer.Dispose();
            scratch.Buffer.Dispose();
        }
    }
}
