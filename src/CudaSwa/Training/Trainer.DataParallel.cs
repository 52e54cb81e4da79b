using System.Diagnostics;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>The trainer's data-parallel side: joining the ranks, the checks that keep them in step, SWAP's phases, and the loss sums over every rank.</summary>
public sealed partial class Trainer
{
    private Distributed.Collective _collective = Distributed.Collective.Single;
    /// <summary>SWAP's phase-2 loader: this rank's small batches in a data order of its own (null before DistributeOver or without SWAP).</summary>
    private BatchLoader? _swapLoader;
    private Distributed.SyncBatchNorm? _syncBatchNorm;
    /// <summary>The salt of SWAP's phase-2 data order: seed ^ (salt + rank).</summary>
    private const ulong SwapSeedSalt = 0x5A4A5000UL;

    /// <summary>
    /// Trains data-parallel over the ranks of <paramref name="collective"/> (after construction and
    /// any <see cref="Resume"/>, before the first epoch). Every rank builds the same trainer (same
    /// options, seed and data) and takes its shard of each global batch of BatchSize samples; the
    /// gradient arena is summed over the ranks in one call per step, so every rank takes the same
    /// step and the weights (and the SWA average, which needs no exchange) stay identical. BN
    /// statistics are per rank while training (as PyTorch's DDP), or the whole batch's with
    /// <see cref="TrainingOptions.SyncBatchNorm"/>; evaluations and the SWA model's BN
    /// recompute see the whole data on every rank. Ranks agree on stopping every step (Ctrl-C,
    /// SIGTERM) and on divergence at the end of each epoch (the loss sums are reduced then). Only
    /// the rank built with a run folder (rank 0) writes. Throws when
    /// the ranks do not start from the same weights and position, or when a resumed run was
    /// trained on another number of ranks.
    /// </summary>
    public void DistributeOver(Distributed.Collective collective)
    {
        ArgumentNullException.ThrowIfNull(collective);
        if (_clock is not null) throw new InvalidOperationException("DistributeOver must come before the first epoch runs.");
        if (collective.Size > _o.BatchSize)
            throw new ArgumentException($"{collective.Size} ranks cannot share batches of {_o.BatchSize} samples: give each rank at least one.", nameof(collective));
        if (_net.BatchNormLayers.Count > 0 && !(_o.SyncBatchNorm && collective.Size > 1))
        {
            // Batch statistics per rank need two samples: no rank may get exactly one of a full or of the last batch.
            foreach (int batch in new[] { 0, _trainLoader.BatchCount - 1 })
            {
                int size = _trainLoader.SizeOf(batch);
                for (int r = 0; r < collective.Size; r++)
                    if (BatchLoader.Shard(size, r, collective.Size).Count == 1)
                        throw new ArgumentException($"With {collective.Size} ranks, batch {batch + 1} of {size} samples gives rank {r} a single sample, and batch norm needs two: " +
                            $"choose a batch size (or training-set size) that leaves each rank 0 or at least 2 samples of every batch.", nameof(collective));
            }
        }
        if (_net.BatchNormLayers.Count > 0 && _o.SwapPhase2 is not null && _train.Count % SwapBatch(collective.Size) == 1)
            throw new ArgumentException($"SWAP's phase 2 trains each rank on batches of {SwapBatch(collective.Size)}, and {_train.Count} training images leave a last batch of a single sample, " +
                "which batch norm cannot use: change the batch size or the training-set size by one.", nameof(collective));
        bool sync = _o.SyncBatchNorm && collective.Size > 1 && _net.BatchNormLayers.Count > 0;
        if (sync && _trainLoader.SizeOf(_trainLoader.BatchCount - 1) == 1)
            throw new ArgumentException($"The last batch of each epoch holds a single sample ({_train.Count} training images in batches of {_o.BatchSize}), and batch norm needs two: " +
                "change the batch size or the training-set size by one.", nameof(collective));
        CheckRanks(collective.Size);
        collective.CheckSame(_state.GlobalStep, "The run's position (global step)");
        collective.CheckSame(sync ? 1 : 0, "Synchronised BN (SyncBatchNorm: 1 on, 0 off)");
        // (positions agree from here on, so every rank takes the same branches below)
        // SWAP's phase 2 gives every rank a model of its own: continuing there needs each rank's own checkpoint.
        bool inPhase2 = _state.StoppedInSwapPhase2;
        if (inPhase2 && collective.Any(_outDir is null))
            throw new InvalidOperationException($"This SWAP run stopped in phase 2 (epoch {_state.NextEpoch + 1}, after epoch {_o.SwapPhase2}): each rank's phase-2 model is its own, " +
                "and some rank has no run folder of its own to continue from (cudaswa train keeps one per rank under ranks/).");
        if (!inPhase2) collective.CheckSame(Checksum(Backend.ToArray(_net.Parameters.All)), "The model's weights");
        _collective = collective;
        _state = _state with { Ranks = collective.Size };
        _syncBatchNorm?.Dispose();
        _syncBatchNorm = sync ? new Distributed.SyncBatchNorm(_net, collective) : null;
        if (_o.SwapPhase2 is not null && collective.Size > 1)
            _swapLoader = new BatchLoader(_train, SwapBatch(collective.Size), shuffle: true, new AugmentSpec { Padding = _o.Padding },
                _o.Seed ^ (SwapSeedSalt + (ulong)collective.Rank));
    }

    /// <summary>SWAP's phase-2 batch on each of <paramref name="ranks"/> ranks: the batch's share, at least 2.</summary>
    private int SwapBatch(int ranks) => Math.Max(2, _o.BatchSize / ranks);

    /// <summary>The ranks this process trains with (<see cref="Distributed.Collective.Single"/> unless <see cref="DistributeOver"/>).</summary>
    public Distributed.Collective Collective => _collective;

    private void CheckRanks(int ranks)
    {
        if (_o.SwapPhase2 is not null && ranks < 2)
            throw new InvalidOperationException("SWAP (SwapPhase2) needs at least two ranks: its phase 2 trains one model per rank and phase 3 averages them.");
        bool started = _state.NextEpoch > 0 || _state.NextBatch > 0;
        if (started && _state.Ranks != ranks)
            throw new InvalidOperationException($"This run was trained on {_state.Ranks} rank(s) and continues only on {_state.Ranks} (here: {ranks}): " +
                "the shards of each batch and the per-rank BN statistics depend on the number of ranks.");
    }

    /// <summary>
    /// Once per epoch: the weights and the SWA average must be the same on every rank (the
    /// average needs no exchange because the weights are); one small all-reduce of checksums
    /// turns any drift into an error naming the epoch instead of a silently wrong average.
    /// </summary>
    private void CheckRanksAgree(int epoch)
    {
        _collective.CheckSame(Checksum(Backend.ToArray(_net.Parameters.All)), $"After epoch {epoch + 1}, the weights' checksum");
        if (_averager is not null && _averager.Count > 0)
            _collective.CheckSame(Checksum(Backend.ToArray(_averager.Parameters.All)), $"After epoch {epoch + 1}, the SWA average's checksum");
        if (_syncBatchNorm is not null) // synchronised BN gives every rank the same running statistics too
            _collective.CheckSame(Checksum(Backend.ToArray(_net.Buffers.All)), $"After epoch {epoch + 1}, the BN running statistics' checksum");
    }

    /// <summary>A position-weighted sum of the values (equal on every rank when the weights are).</summary>
    private static double Checksum(float[] values)
    {
        double sum = 0;
        for (int i = 0; i < values.Length; i++) sum += values[i] * (double)(1 + (i & 1023));
        return sum;
    }

    /// <summary>
    /// SWAP's phase 3: the ranks' phase-2 weights averaged with one all-reduce (each rank adds
    /// its weights / R), then BN statistics recomputed for the average with the batches shared
    /// between the ranks. Every rank ends with the same model.
    /// </summary>
    private void AverageRanks(int epoch)
    {
        _events.SwapAveraging?.Invoke(_net);
        _events.Phase?.Invoke(new PhaseProgress("swap-average", 0, 1));
        _collective.AllReduceSum(Backend, _net.Parameters.All, 1f / _collective.Size);
        BatchNormRecompute.RunAcrossRanks(_net, _bnLoader, epoch, _bnPass.Mode, (done, all) => _events.Phase?.Invoke(new PhaseProgress("bn-recompute", done, all)), _collective);
        _swapAveraged = true;
    }

    /// <summary>Whether SWAP's phase 3 has replaced the weights by the ranks' average (in this process).</summary>
    private bool _swapAveraged;

    /// <summary>Whether <paramref name="value"/> holds on any rank (this rank alone when not distributed).</summary>
    private bool AnyRank(bool value) => _collective.Size > 1 ? _collective.Any(value) : value;

    /// <summary>Every rank's own [loss sum, correct] so far, in rank order (null when not distributed).</summary>
    private float[]? RankStats()
    {
        if (_collective.Size == 1) return null;
        var (loss, correct) = _step.ReadStats();
        var all = new float[2 * _collective.Size];
        all[2 * _collective.Rank] = (float)loss;
        all[2 * _collective.Rank + 1] = (float)correct;
        _collective.AllReduceSum(all); // the other entries are zero: the sum gathers them exactly
        return all;
    }

    /// <summary>[loss sum, correct] of the epoch so far over every rank's shards.</summary>
    private (double LossSum, double Correct) GlobalStats()
    {
        var (loss, correct) = _step.ReadStats();
        if (_collective.Size == 1) return (loss, correct);
        Span<double> both = [loss, correct];
        _collective.AllReduceSumDouble(both);
        return (both[0], both[1]);
    }

}
