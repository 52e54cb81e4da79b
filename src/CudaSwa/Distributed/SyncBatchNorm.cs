using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Distributed;

/// <summary>
/// Training-mode batch norm over the whole global batch when its samples are spread over the
/// ranks (synchronised BN): each BN layer normalises with the batch's mean and variance, not its
/// shard's, so R ranks train the network one process would with the whole batch.
/// <para>
/// Forward, per layer: every rank writes its shard's (count, C means, C M2s) into its own row of a
/// zeroed table (<see cref="Backend.BatchNormMoments"/>), one all-reduce gathers the rows (the
/// other rows are zero, so the sum is exact), and <see cref="Backend.BatchNormMergeShards"/> merges
/// them with Chan's formula in rank order — the same bits on every rank — into the batch's
/// statistics and the running statistics (equal on every rank too); each rank then normalises its
/// shard as inference-mode BN with the batch's mean and biased variance. Backward: each rank's
/// Σ dy and Σ dy·xhat (<see cref="Backend.BatchNormBackwardReduce"/>) are summed by one all-reduce
/// weighted by shard/batch — each rank's dy is the gradient of its shard's mean loss, as
/// <c>TrainingStep.RunShard</c> computes it — and <see cref="Backend.BatchNormBackwardElementwise"/>
/// finishes dx with this shard's count, in this shard's scale. dGamma and dBeta stay per rank: the
/// gradient all-reduce weights and sums them with the rest.
/// </para>
/// <para>
/// Everything stays on the device: with NCCL the exchanges run on the backend's stream without a
/// host synchronisation. A rank whose shard of a batch is empty still takes part in every exchange
/// (<see cref="TakePartWithoutSamples"/>).
/// </para>
/// </summary>
internal sealed class SyncBatchNorm : IBatchNormSync, IDisposable
{
    private readonly Collective _collective;
    private readonly Backend _backend;
    private readonly Tensor _rows;     // ranks x (1 + 2C) for the widest layer: the gathered shard statistics
    private readonly Tensor _sums;     // 2C: Σ dy, Σ dy·xhat
    private readonly Tensor _batchVar; // C: the batch's biased variance
    private int _shard;
    private float _weight;
    private bool _begun;

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
        _rows = backend.AllocateTensor(new TensorShape(checked(collective.Size * (1 + 2 * channels))));
        _sums = backend.AllocateTensor(new TensorShape(2 * channels));
        _batchVar = backend.AllocateTensor(new TensorShape(channels));
    }

    /// <summary>The ranks the statistics span.</summary>
    public Collective Collective => _collective;

    /// <summary>
    /// Sets this step's split: this rank holds <paramref name="shard"/> of the <paramref name="globalBatch"/>
    /// samples (0 for none); the backward weights this rank's sums by shard/globalBatch.
    /// </summary>
    public void BeginStep(int shard, int globalBatch)
    {
        if (globalBatch < 2) throw new ArgumentOutOfRangeException(nameof(globalBatch), $"Training-mode batch norm needs at least 2 samples per batch over all ranks; got {globalBatch}.");
        ArgumentOutOfRangeException.ThrowIfNegative(shard);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(shard, globalBatch);
        _shard = shard;
        _weight = (float)shard / globalBatch;
        _begun = true;
    }

    /// <summary>
    /// One BN layer's training forward on this rank's shard <paramref name="x"/> (y = BN(x), or
    /// max(BN(x), 0) with <paramref name="relu"/>) with the statistics of every rank's shard;
    /// updates the running statistics with <paramref name="factor"/> and saves the batch's mean
    /// and inverse std for the backward pass. <paramref name="x"/> is default for a rank without samples.
    /// </summary>
    public void Forward(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd, bool relu)
    {
        if (!_begun) throw new InvalidOperationException("BeginStep must say how the batch is split before the first forward pass.");
        int c = (int)runningMean.Length, row = 1 + 2 * c, ranks = _collective.Size;
        var rows = _rows.Slice(0, ranks * row);
        _backend.Fill(rows, 0f);
        if (!x.IsNull)
        {
            var mine = rows.Slice((long)_collective.Rank * row, row);
            _backend.Fill(mine.Slice(0, 1), (float)((long)x.Shape.N * x.Shape.H * x.Shape.W));
            _backend.BatchNormMoments(x, mine.Slice(1, c), mine.Slice(1 + c, c));
        }
        _collective.AllReduceSum(_backend, rows, 1f);
        var batchVar = _batchVar.Slice(0, c);
        _backend.BatchNormMergeShards(rows, ranks, factor, epsilon, runningMean, runningVar, saveMean, saveInvStd, batchVar);
        if (x.IsNull) return;
        // Normalising with the batch's mean and biased variance is inference-mode BN with them.
        if (relu) _backend.BatchNormReluForwardInference(x, y, gamma, beta, saveMean, batchVar, epsilon);
        else _backend.BatchNormForwardInference(x, y, gamma, beta, saveMean, batchVar, epsilon);
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
        var sums = _sums.Slice(0, 2 * c);
        Tensor sumDy = sums.Slice(0, c), sumDyXhat = sums.Slice(c, c);
        if (x.IsNull) _backend.Fill(sums, 0f);
        else _backend.BatchNormBackwardReduce(x, y, dy, saveMean, saveInvStd, sumDy, sumDyXhat, dGamma, dBeta);
        // Rank q's dy is n/n_q times the batch-mean loss's gradient: the batch's sums are
        // Σ_q (n_q/n) s_q, and divided by this rank's count they give dx in this rank's scale.
        _collective.AllReduceSum(_backend, sums, _weight);
        if (x.IsNull) return;
        _backend.BatchNormBackwardElementwise(x, y, dy, gamma, saveMean, saveInvStd, sumDy, sumDyXhat,
            (double)x.Shape.N * x.Shape.H * x.Shape.W, dx, accumulate);
    }

    /// <summary>
    /// A rank with no samples in this step's batch: the exchanges of every BN layer of
    /// <paramref name="network"/> in the order the others make them (forward, then backward in
    /// reverse), contributing nothing; the running statistics are updated like everyone's.
    /// </summary>
    public void TakePartWithoutSamples(Network network)
    {
        if (_shard != 0) throw new InvalidOperationException($"This rank holds {_shard} samples of the step's batch: it takes part with them.");
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

    /// <summary>Frees the device scratch.</summary>
    public void Dispose()
    {
        _rows.Buffer.Dispose();
        _sums.Buffer.Dispose();
        _batchVar.Buffer.Dispose();
    }
}
