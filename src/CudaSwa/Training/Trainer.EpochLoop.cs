using System.Diagnostics;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>The epoch loop: steps on schedule, averaging and snapshots, per-epoch evaluation, the checkpoint, and the stops (Ctrl-C, divergence).</summary>
public sealed partial class Trainer
{
    /// <summary>
    /// Runs the next epoch (from its saved batch when resuming mid-epoch), then averages,
    /// evaluates and checkpoints. Returns Interrupted (after saving) when <paramref name="cancel"/>
    /// fires, Diverged when the loss is no longer finite.
    /// </summary>
    public RunOutcome RunEpoch(CancellationToken cancel)
    {
        if (IsComplete) throw new InvalidOperationException("The run is already complete.");
        if (_clock is null) CheckRanks(_collective.Size);
        _clock ??= Stopwatch.StartNew();
        bool parallel = _collective.Size > 1;
        int epoch = _state.NextEpoch;
        // SWAP's phase 2: this rank alone, small batches in its own order; no gradient exchange.
        bool phase2 = _o.SwapPhase2 is int swapFrom && epoch >= swapFrom && _swapLoader is not null;
        var loader = phase2 ? _swapLoader! : _trainLoader;
        int batches = loader.BatchCount;
        int first = _state.NextBatch;
        long globalStep = _state.GlobalStep;
        var epochClock = Stopwatch.StartNew();
        loader.BeginEpoch(epoch);
        // Mid-epoch: each rank continues its own saved partial sums (one process: the run's).
        if (first > 0 && parallel && _state.PartialRankSums is { } sums && sums.Count == 2 * _collective.Size)
            Backend.Upload<float>([sums[2 * _collective.Rank], sums[2 * _collective.Rank + 1]], _step.Stats);
        else if (first > 0 && !parallel) Backend.Upload<float>([_state.PartialLossSum, _state.PartialCorrect], _step.Stats);
        else _step.ResetStats();
        _events.EpochStarted?.Invoke(new EpochStart(epoch, first, batches));
        long passes = phase2 ? _collective.Size : 1; // in phase 2 every rank goes through the whole set
        long seen = first == 0 ? 0 : Math.Min(_train.Count * passes, (long)first * loader.BatchSize * passes);
        long seenAtStart = seen, seenHere = 0;
        double lr = 0;
        var lastReport = Stopwatch.StartNew();
        for (int i = first; i < batches; i++)
        {
            if (AnyRank(cancel.IsCancellationRequested))
            {
                var stats = GlobalStats();
                if (!double.IsFinite(stats.LossSum) || !Save(epoch, i, globalStep, (float)stats.LossSum, (float)stats.Correct, _state.History, RankStats()))
                    return Diverged(epoch, i);
                _events.Message?.Invoke($"Interrupted at epoch {epoch + 1}, batch {i}/{batches}; checkpoint saved" + (_outDir is null ? "" : $" in {_outDir}") + ".");
                return RunOutcome.Interrupted;
            }
            lr = _schedule.At(epoch, i, batches);
            // Dropout masks keyed by (step, rank): the ranks draw different masks (one process: by step alone).
            ulong key = (ulong)globalStep * (ulong)_collective.Size + (ulong)_collective.Rank;
            int b;
            if (parallel && !phase2)
            {
                b = _trainLoader.LoadShard(i, _collective.Rank, _collective.Size, _net.Input(_o.BatchSize), _step.Labels);
                _step.RunShard(b, _trainLoader.SizeOf(i), (float)lr, key, _collective, _syncBatchNorm);
            }
            else
            {
                b = loader.Load(i, _net.Input(_o.BatchSize), _step.Labels);
                _step.Run(b, (float)lr, key);
            }
            globalStep++;
            seen += phase2 ? b * passes : _trainLoader.SizeOf(i);
            seenHere += b;
            if (_averager is not null && _averaging!.AfterStep(globalStep)) _averager.Update();
            _events.BatchCompleted?.Invoke(new BatchDone(epoch, i));
            if (lastReport.Elapsed.TotalSeconds >= 0.25 || i == batches - 1)
            {
                lastReport.Restart();
                // This rank's shards only (the ranks read at different moments; the epoch's totals are summed below).
                var (lossSum, correct) = _step.ReadStats();
                if (!parallel && !double.IsFinite(lossSum)) return Diverged(epoch, i);
                long counted = parallel ? seenHere : seen;
                _events.Progress?.Invoke(new IterationProgress(epoch, i + 1, batches, lossSum / Math.Max(counted, 1), correct / Math.Max(counted, 1),
                    (seen - seenAtStart) / Math.Max(epochClock.Elapsed.TotalSeconds, 1e-9), lr));
            }
        }
        double trainSeconds = epochClock.Elapsed.TotalSeconds;
        var (trainLossSum, trainCorrect) = GlobalStats();
        if (!double.IsFinite(trainLossSum)) return Diverged(epoch, batches - 1);

        if (phase2 && epoch == _o.Epochs - 1) AverageRanks(epoch);
        if (_averager is not null && _averaging!.AfterEpoch(epoch)) _averager.Update();
        if (parallel && !phase2) CheckRanksAgree(epoch);
        if (_ensemble is not null && _snapshots!.AfterEpoch(epoch)) _ensemble.AddSnapshot();

        var record = new EpochRecord
        {
            Epoch = epoch + 1,
            LearningRate = lr,
            TrainLoss = trainLossSum / ((double)_train.Count * passes),
            TrainAccuracy = trainCorrect / ((double)_train.Count * passes),
            AveragedModels = _averager?.Count ?? 0,
            EnsembleSnapshots = _ensemble?.Count ?? 0,
            TrainSeconds = trainSeconds,
            ImagesPerSecond = (seen - seenAtStart) / Math.Max(trainSeconds, 1e-9),
        };
        bool last = epoch == _o.Epochs - 1;
        if ((epoch + 1) % _o.EvalEvery == 0 || last || (_o.EvaluateAt?.Contains(epoch + 1) ?? false)) record = Evaluate(record, epoch);
        record = record with { EpochSeconds = epochClock.Elapsed.TotalSeconds };
        if (AnyRank(record.Trained is { Loss: var testLoss } && !double.IsFinite(testLoss))) return Diverged(epoch, batches - 1);
        if (!Save(epoch + 1, 0, globalStep, 0, 0, [.. _state.History, record])) return Diverged(epoch, batches - 1);
        _events.EpochCompleted?.Invoke(record);
        return RunOutcome.Completed;
    }

    private RunOutcome Diverged(int epoch, int batch)
    {
        string keep = _state.CheckpointFolder.Length > 0 ? $"the last good checkpoint (epoch {_state.NextEpoch}, batch {_state.NextBatch}) is kept in {_outDir}" : "no checkpoint was written yet";
        _events.Message?.Invoke($"The loss, weights or BN statistics became NaN/Inf by epoch {epoch + 1}, batch {batch + 1}: training diverged and stopped; {keep}.");
        return RunOutcome.Diverged;
    }

    private EpochRecord Evaluate(EpochRecord record, int epoch)
    {
        _events.Phase?.Invoke(new PhaseProgress("test", 0, 1));
        var (testLoss, testAcc, calibration) = _evaluator.EvaluateCalibrated(_testLoader);
        record = record.WithScore(new ModelScore(ScoredModel.Trained, "SGD", testLoss, testAcc, calibration.Ece, calibration.Brier));
        CalibrationMetrics? swaCalibration = null;
        if (_averager is not null && _averager.Count > 0)
        {
            var clock = Stopwatch.StartNew();
            var swa = EvaluateAverageCalibrated(epoch, _collective);
            swaCalibration = swa.Calibration;
            record = record.WithScore(new ModelScore(ScoredModel.Average, _averager.Method.AverageName, swa.Loss, swa.Accuracy, swa.Calibration.Ece, swa.Calibration.Brier))
                with { BnRecomputeSeconds = clock.Elapsed.TotalSeconds };
        }
        _lastCalibration = (epoch + 1, calibration, swaCalibration);
        if (_ensemble is not null && _ensemble.Count > 0)
        {
            var (l, a) = _ensemble.Score();
            var c = _ensemble.Calibration();
            record = record.WithScore(new ModelScore(ScoredModel.Ensemble, "Ensemble", l, a, c.Ece, c.Brier));
        }
        return record;
    }

    /// <summary>Binds the averaged weights, recomputes their BN statistics (unless BnRecompute is null: then they keep the averaged ones) and evaluates them.</summary>
    public (double Loss, double Accuracy) EvaluateAverage(int epochKey)
    {
        var (loss, accuracy, _) = EvaluateAverageCalibrated(epochKey, Distributed.Collective.Single);
        return (loss, accuracy);
    }

    /// <summary>
    /// With <paramref name="collective"/> of several ranks (every rank calls it, inside training)
    /// the BN recompute's batches are shared between the ranks; the final results, which rank 0
    /// alone computes, pass <see cref="Distributed.Collective.Single"/>.
    /// </summary>
    private (double Loss, double Accuracy, CalibrationMetrics Calibration) EvaluateAverageCalibrated(int epochKey, Distributed.Collective collective)
    {
        if (_averager is null || _averager.Count == 0) throw new InvalidOperationException("Nothing has been averaged yet.");
        using (_averager.Bind())
        {
            if (_o.BnRecompute is not null)
            {
                BatchNormRecompute.RunAcrossRanks(_net, _bnLoader, epochKey, _bnPass.Mode, (done, all) => _events.Phase?.Invoke(new PhaseProgress("bn-recompute", done, all)), collective);
                _swaStatistics = $"recomputed ({_bnPass.Mode}) for the average of {_averager.Count} models after epoch {epochKey + 1}";
                _swaRecomputed = _bnPass with { EpochKey = epochKey };
            }
            else (_swaStatistics, _swaRecomputed) = ("averaged with the weights (no BN recompute)", null);
            _events.Phase?.Invoke(new PhaseProgress("swa-test", 0, 1));
            return _evaluator.EvaluateCalibrated(_testLoader);
        }
    }

}
