using System.Diagnostics;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>The end of a run: the final table of every model (SGD or SWAP, the average, the ensemble, SWAG's Bayesian model average), each with its calibration.</summary>
public sealed partial class Trainer
{
    /// <summary>The seed of SWAG's sample draws: the run's seed with a salt of its own (so they differ from every other stream).</summary>
    internal static ulong SwagSampleSeed(TrainingOptions options) => options.Seed ^ 0x5357_4147_5341_4D50UL;

    /// <summary>
    /// SWAG's Bayesian model average: for each of <see cref="TrainingOptions.SwagSamples"/> samples
    /// of the Gaussian, bind the sample, recompute its BN statistics (keyed by the sample, so the
    /// result is reproducible) and fold its test-set probabilities into the running mean; the
    /// calibration of that mean. Reports phase "swag-sample" with samples done.
    /// </summary>
    public CalibrationMetrics SwagModelAverage()
    {
        if (_averager?.Swag is null || _averager.Count == 0) throw new InvalidOperationException("SWAG has collected nothing yet (needs Average = Swag and a model averaged).");
        int samples = _o.SwagSamples;
        using var bma = new PredictionEnsemble(_net, _testLoader);
        for (int s = 0; s < samples; s++)
        {
            int done = s;
            _events.Phase?.Invoke(new PhaseProgress("swag-sample", done, samples));
            using (_averager.BindSwagSample(s, SwagSampleSeed(_o), _o.SwagScale))
            {
                if (_o.BnRecompute is not null)
                    BatchNormRecompute.Run(_net, _bnLoader, _o.Epochs + 1 + s, _bnPass.Mode, (_, _) => _events.Phase?.Invoke(new PhaseProgress("swag-sample", done, samples)));
                bma.AddSnapshot();
            }
        }
        _events.Phase?.Invoke(new PhaseProgress("swag-sample", samples, samples));
        return bma.Calibration();
    }

    /// <summary>
    /// The final table: the SGD model, the averaged model, the prediction ensemble and (with SWAG)
    /// the Bayesian model average of SWAG samples on the test set, each with its calibration (NLL,
    /// ECE, Brier score, reliability bins). The SGD and averaged models' numbers come from the last
    /// epoch's evaluation when this process ran it, else from one test pass each (the averaged one
    /// with the BN statistics of its last evaluation); SWAG takes <see cref="TrainingOptions.SwagSamples"/>
    /// BN recomputes and test passes.
    /// </summary>
    public List<ResultRow> FinalResults()
    {
        var rows = new List<ResultRow>();
        var last = _state.History.LastOrDefault();
        // The last epoch's evaluation, when this process ran it, already holds everything (bins included).
        var evaluated = last is not null && _lastCalibration?.Epoch == last.Epoch && last.Epoch == _state.NextEpoch ? _lastCalibration : null;
        double sgdLoss, sgdAcc;
        CalibrationMetrics sgdCalibration;
        if (evaluated is { } e && last!.Trained is { } recorded) (sgdLoss, sgdAcc, sgdCalibration) = (recorded.Loss, recorded.Accuracy, e.Sgd);
        else
        {
            _events.Phase?.Invoke(new PhaseProgress("test", 0, 1));
            (sgdLoss, sgdAcc, sgdCalibration) = _evaluator.EvaluateCalibrated(_testLoader);
        }
        rows.Add(_swapAveraged || (_o.SwapPhase2 is not null && _state.Ranks > 1 && IsComplete)
            ? new ResultRow("SWAP", sgdLoss, sgdAcc, $"average of {_state.Ranks} ranks' models trained alone after epoch {_o.SwapPhase2}, BN recomputed") { Calibration = sgdCalibration }
            : new ResultRow("SGD", sgdLoss, sgdAcc, $"final weights after {_state.NextEpoch} epochs") { Calibration = sgdCalibration });
        if (_averager is not null)
        {
            string meanName = _averager.Method.AverageName;
            if (_averager.Count > 0)
            {
                (double Loss, double Accuracy, CalibrationMetrics Calibration) swa;
                if (evaluated?.Swa is { } swaCalibration && last!.Average is { } recordedAverage)
                    swa = (recordedAverage.Loss, recordedAverage.Accuracy, swaCalibration);
                else if (last?.Average is not null)
                {
                    // The statistics of the last evaluation belong to this average: test it as it is.
                    _events.Phase?.Invoke(new PhaseProgress("swa-test", 0, 1));
                    using (_averager.Bind()) swa = _evaluator.EvaluateCalibrated(_testLoader);
                }
                else swa = EvaluateAverageCalibrated(_o.Epochs, Distributed.Collective.Single);
                rows.Add(new ResultRow(meanName, swa.Loss, swa.Accuracy,
                    _averager.Method.DescribeAverage(_averager.Count, _averager.State) +
                    (_o.BnRecompute is null ? ", BN not recomputed" : $", BN recomputed ({_bnPass.Mode})")) { Calibration = swa.Calibration });
            }
            else rows.Add(new ResultRow(meanName, null, null, "no model averaged yet"));
        }
        if (_ensemble is not null && _ensemble.Count > 0)
        {
            var (l, a) = _ensemble.Score();
            rows.Add(new ResultRow("Ensemble", l, a, $"mean prediction of {_ensemble.Count} snapshots (FGE-style)") { Calibration = _ensemble.Calibration() });
        }
        if (_averager?.Swag is { } swag)
        {
            if (swag.Count > 0)
            {
                var bma = SwagModelAverage();
                rows.Add(new ResultRow("SWAG", bma.Nll, bma.Accuracy,
                    $"Bayesian model average of {_o.SwagSamples} samples (rank {swag.Columns} of {swag.Rank}, scale {_o.SwagScale:g3})" +
                    (_o.BnRecompute is null ? ", BN averaged" : $", BN recomputed ({_bnPass.Mode}) per sample")) { Calibration = bma });
            }
            else rows.Add(new ResultRow("SWAG", null, null, "no model collected yet"));
        }
        return rows;
    }

}
