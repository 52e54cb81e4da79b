using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Distributed;

/// <summary>
/// Training-mode batch norm over the whole global batch when its samples are spread over the
/// ranks (synchronised BN): each BN layer normalises with the batch's mean and variance, not its
/// shard's, so R ranks train the network one process would with the whole batch.
/// <para>
/// Forward, per layer: each rank's per-channel (count, mean, M2) are gathered (one small
/// all-reduce in double; each rank fills its own slot, so the sum is exact) and merged with Chan's
/// formula in rank order, identically on every rank; each rank then normalises its shard with the
/// merged mean and biased variance (inference-mode BN with those statistics) and updates the
/// running statistics as one process would (so they too are equal on every rank). Backward: each
/// rank's Σ dy and Σ dy·xhat are gathered the same way and combined as the gradient of the batch's
/// mean loss; each rank's dy is the gradient of its shard's mean loss (as <c>TrainingStep.RunShard</c>
/// computes it), which sets the weights. dGamma and dBeta stay per rank: the gradient all-reduce
/// sums them with the rest.
/// </para>
/// <para>
/// A rank whose shard of a batch is empty still takes part in every exchange
/// (<see cref="TakePartWithoutSamples"/>). The per-channel values travel through the host in double
/// (a device-to-host copy per layer and direction): correct first; an on-device path over NCCL
/// would save the copies on GPUs.
/// </para>
/// </summary>
internal sealed class SyncBatchNorm : IDisposable
{
    private readonly Collective _collective;
    private readonly Backend _backend;
    private readonly Tensor _first, _second;      // per-channel device scratch: (mean, M2) forward, (Σ dy, Σ dy·xhat) backward
    private readonly float[] _hostFirst, _hostSecond, _hostInvStd, _hostRunningMean, _hostRunningVar;
    private readonly double[] _gathered;         // (count, C values, C values) per rank
    private readonly double[] _mergedFirst, _mergedSecond;

    /// <summary>Scratch for the widest BN layer of <paramref name="network"/>, exchanging over <paramref name="collective"/>.</summary>
    public SyncBatchNorm(Network network, Collective collective)
        : this(network.Backend, network.BatchNormLayers.Count == 0 ? 1 : network.BatchNormLayers.Max(b => b.Channels), collective)
    {
    }

    /// <summary>Scratch for BN layers of up to <paramref name="channels"/> channels on <paramref name="backend"/>.</summary>
    public SyncBatchNorm(Backend backend, int channels, Collective collective)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(collective);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        _collective = collective;
        _backend = backend;
        _first = _backend.AllocateTensor(new TensorShape(channels));
        _second = _backend.AllocateTensor(new TensorShape(channels));
        _hostFirst = new float[channels];
        _hostSecond = new float[channels];
        _hostInvStd = new float[channels];
        _mergedFirst = new double[channels];
        _mergedSecond = new double[channels];
        _hostRunningMean = new float[channels];
        _hostRunningVar = new float[channels];
        _gathered = new double[collective.Size * (1 + 2 * channels)];
    }

    /// <summary>The ranks the statistics span.</summary>
    public Collective Collective => _collective;

    /// <summary>
    /// One BN layer's training forward on this rank's shard <paramref name="x"/> (y = BN(x), or
    /// max(BN(x), 0) with <paramref name="relu"/>) with the statistics of every rank's shard;
    /// updates the running statistics with <paramref name="factor"/> and saves the batch's mean
    /// and inverse std for the backward pass. <paramref name="x"/> is default for a rank without samples.
    /// </summary>
    public void Forward(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd, bool relu)
    {
        int c = (int)runningMean.Length;
        var mean = _first.Slice(0, c);
        var m2 = _second.Slice(0, c);
        long count = 0;
        if (!x.IsNull)
        {
            count = (long)x.Shape.N * x.Shape.H * x.Shape.W;
            _backend.BatchNormMoments(x, mean, m2);
            _backend.Download<float>(mean, _hostFirst.AsSpan(0, c));
            _backend.Download<float>(m2, _hostSecond.AsSpan(0, c));
        }
        var (total, batchMean, batchM2) = Gather(count, c);
        if (total < 2)
            throw new InvalidOperationException($"Training-mode batch norm needs at least 2 values per channel over all ranks; the ranks' shards hold {total}.");

        // The batch's statistics and the running update, as BatchNormForwardTraining computes them.
        _backend.Download<float>(runningMean, _hostRunningMean.AsSpan(0, c));
        _backend.Download<float>(runningVar, _hostRunningVar.AsSpan(0, c));
        for (int ch = 0; ch < c; ch++)
        {
            double varBiased = Math.Max(0, batchM2[ch] / total);
            double varUnbiased = varBiased * total / (total - 1);
            _hostRunningMean[ch] = (float)((1 - factor) * _hostRunningMean[ch] + factor * batchMean[ch]);
            _hostRunningVar[ch] = (float)((1 - factor) * _hostRunningVar[ch] + factor * varUnbiased);
            _hostFirst[ch] = (float)batchMean[ch];
            _hostSecond[ch] = (float)varBiased;
            _hostInvStd[ch] = (float)(1.0 / Math.Sqrt(varBiased + epsilon));
        }
        _backend.Upload<float>(_hostRunningMean.AsSpan(0, c), runningMean);
        _backend.Upload<float>(_hostRunningVar.AsSpan(0, c), runningVar);
        _backend.Upload<float>(_hostFirst.AsSpan(0, c), saveMean);
        _backend.Upload<float>(_hostInvStd.AsSpan(0, c), saveInvStd);
        if (x.IsNull) return;

        // Normalising with the batch's mean and biased variance is inference-mode BN with them.
        _backend.Upload<float>(_hostSecond.AsSpan(0, c), m2);
        if (relu) _backend.BatchNormReluForwardInference(x, y, gamma, beta, saveMean, m2, epsilon);
        else _backend.BatchNormForwardInference(x, y, gamma, beta, saveMean, m2, epsilon);
    }

    /// <summary>
    /// One BN layer's backward on this rank's shard: dx from the whole batch's gradient sums
    /// (overwrite unless <paramref name="accumulate"/>), dGamma and dBeta += this shard's share.
    /// <paramref name="y"/> is the fused ReLU's output (default: none); <paramref name="x"/> is
    /// default for a rank without samples.
    /// </summary>
    public void Backward(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, bool accumulate)
    {
        int c = (int)saveMean.Length;
        var sumDy = _first.Slice(0, c);
        var sumDyXhat = _second.Slice(0, c);
        long count = 0;
        if (!x.IsNull)
        {
            count = (long)x.Shape.N * x.Shape.H * x.Shape.W;
            _backend.BatchNormBackwardReduce(x, y, dy, saveMean, saveInvStd, sumDy, sumDyXhat, dGamma, dBeta);
            _backend.Download<float>(sumDy, _hostFirst.AsSpan(0, c));
            _backend.Download<float>(sumDyXhat, _hostSecond.AsSpan(0, c));
        }
        // Rank q's dy is its shard-mean loss's gradient, (n/n_q) times the batch-mean loss's: the
        // batch's sums are S = Σ_q (n_q/n) s_q, and in this rank's scale dx needs S/n_r.
        var (_, s1, s2) = Gather(count, c, weighted: true);
        if (x.IsNull) return;
        for (int ch = 0; ch < c; ch++)
        {
            _hostFirst[ch] = (float)(s1[ch] / count);
            _hostSecond[ch] = (float)(s2[ch] / count);
        }
        _backend.Upload<float>(_hostFirst.AsSpan(0, c), sumDy);
        _backend.Upload<float>(_hostSecond.AsSpan(0, c), sumDyXhat);
        _backend.BatchNormBackwardElementwise(x, y, dy, gamma, saveMean, saveInvStd, sumDy, sumDyXhat, dx, accumulate);
    }

    /// <summary>
    /// A rank with no samples in this step's batch: the exchanges of every BN layer of
    /// <paramref name="network"/> in the order the others make them (forward, then backward in
    /// reverse), contributing nothing; the running statistics are updated like everyone's.
    /// </summary>
    public void TakePartWithoutSamples(Network network)
    {
        var p = network.Parameters;
        var b = network.Buffers;
        foreach (var bn in network.BatchNormLayers)
            Forward(default, default, p[bn.ScaleIndex], p[bn.ShiftIndex], b[bn.RunningMeanIndex], b[bn.RunningVarIndex],
                BatchNorm2d.DefaultMomentum, BatchNorm2d.Epsilon, bn.SavedMean, bn.SavedInvStd, relu: false);
        for (int i = network.BatchNormLayers.Count - 1; i >= 0; i--)
        {
            var bn = network.BatchNormLayers[i];
            Backward(default, default, default, p[bn.ScaleIndex], bn.SavedMean, bn.SavedInvStd, default,
                network.Gradients[bn.ScaleIndex], network.Gradients[bn.ShiftIndex], accumulate: false);
        }
    }

    /// <summary>
    /// Every rank's (count, first C values, second C values), this rank's from its host scratch,
    /// gathered with one all-reduce and combined in rank order: Chan's merge of (mean, M2) pairs,
    /// or (weighted) sums weighted by count/total. Identical on every rank.
    /// </summary>
    private (long Total, double[] First, double[] Second) Gather(long count, int c, bool weighted = false)
    {
        int slot = 1 + 2 * c, ranks = _collective.Size;
        var all = _gathered.AsSpan(0, ranks * slot);
        all.Clear();
        var mine = all.Slice(_collective.Rank * slot, slot);
        mine[0] = count;
        if (count > 0)
            for (int ch = 0; ch < c; ch++)
            {
                mine[1 + ch] = _hostFirst[ch];
                mine[1 + c + ch] = _hostSecond[ch];
            }
        _collective.AllReduceSumDouble(all);

        var first = _mergedFirst.AsSpan(0, c);
        var second = _mergedSecond.AsSpan(0, c);
        first.Clear();
        second.Clear();
        long total = 0;
        for (int r = 0; r < ranks; r++) total += (long)all[r * slot];
        double merged = 0;
        for (int r = 0; r < ranks; r++)
        {
            var theirs = all.Slice(r * slot, slot);
            double n = theirs[0];
            if (n == 0) continue;
            for (int ch = 0; ch < c; ch++)
            {
                double a = theirs[1 + ch], b = theirs[1 + c + ch];
                if (weighted)
                {
                    first[ch] += n / total * a;
                    second[ch] += n / total * b;
                }
                else if (merged == 0)
                {
                    first[ch] = a;
                    second[ch] = b;
                }
                else
                {
                    double delta = a - first[ch], sum = merged + n;
                    first[ch] += delta * n / sum;
                    second[ch] += b + delta * delta * merged * n / sum;
                }
            }
            merged += n;
        }
        return (total, _mergedFirst, _mergedSecond);
    }

    /// <summary>Frees the device scratch.</summary>
    public void Dispose()
    {
        _first.Buffer.Dispose();
        _second.Buffer.Dispose();
    }
}
