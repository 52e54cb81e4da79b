namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- batch normalisation

    /// <summary>
    /// Training-mode batch norm, exactly as cuDNN's cudnnBatchNormalizationForwardTraining:
    /// normalises with the batch mean and the biased batch variance, then updates
    /// running = (1 - factor) * running + factor * batch, storing the unbiased variance
    /// (times M/(M-1), M = N*H*W). factor = 1/(1+n) on the n-th call (0-based) gives the
    /// cumulative average. saveMean and saveInvStd (1/sqrt(var + eps)) feed the backward pass.
    /// </summary>
    public void BatchNormForwardTraining(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        CheckBatchNormTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);
        Wrote(y); Wrote(runningMean); Wrote(runningVar); Wrote(saveMean); Wrote(saveInvStd);
        using (new OpTimer(this, "BatchNormForwardTraining")) BatchNormForwardTrainingCore(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);
    }

    /// <summary>Inference-mode batch norm with the running statistics.</summary>
    public void BatchNormForwardInference(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double epsilon)
    {
        CheckBatchNorm(x, y, gamma, beta, runningMean, runningVar, epsilon);
        Wrote(y);
        using (new OpTimer(this, "BatchNormForwardInference")) BatchNormForwardInferenceCore(x, y, gamma, beta, runningMean, runningVar, epsilon);
    }

    /// <summary>Batch norm backward from the saved batch statistics: dx (overwrite unless accumulate), dGamma += , dBeta += .</summary>
    public void BatchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate)
    {
        CheckBatchNormBackward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, epsilon);
        Wrote(dx); Wrote(dGamma); Wrote(dBeta);
        using (new OpTimer(this, "BatchNormBackward")) BatchNormBackwardCore(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, epsilon, accumulate);
    }

    /// <summary>
    /// Merges one batch's per-channel statistics into a running (mean, M2) pair with Chan's
    /// parallel formula, so that after the last batch accMean is the population mean and
    /// accM2/(count-1) the unbiased population variance over every value seen. The batch variance
    /// is read back from saveInvStd (biased, 1/invStd^2 - eps). <paramref name="batchCount"/> is
    /// values per channel in this batch (N*H*W); <paramref name="previousCount"/> those merged before.
    /// </summary>
    public void BatchNormMergeStatistics(Tensor saveMean, Tensor saveInvStd, double epsilon,
        long batchCount, long previousCount, Tensor accMean, Tensor accM2)
    {
        int c = checked((int)saveMean.Length);
        RequireLength(saveInvStd, c, nameof(saveInvStd), "as many channels as saveMean");
        RequireLength(accMean, c, nameof(accMean), "as many channels as saveMean");
        RequireLength(accM2, c, nameof(accM2), "as many channels as saveMean");
        if (batchCount <= 0 || previousCount < 0)
            throw new ArgumentOutOfRangeException(nameof(batchCount), $"Counts must be positive; got batch {batchCount}, previous {previousCount}.");
        Wrote(accMean); Wrote(accM2);
        using (new OpTimer(this, "BatchNormMergeStatistics")) BatchNormMergeStatisticsCore(saveMean, saveInvStd, epsilon, batchCount, previousCount, accMean, accM2);
    }

    // ---------------------------------------------------------------- batch norm fused with the ReLU after it

    /// <summary>
    /// y = max(BN(x), 0): <see cref="BatchNormForwardTraining"/> followed by a ReLU, in one pass
    /// where the backend can (the CPU does; elsewhere BN writes y and the ReLU runs on y in place).
    /// Same values as the two ops one after the other.
    /// </summary>
    public void BatchNormReluForwardTraining(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        CheckBatchNormTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);
        Wrote(y); Wrote(runningMean); Wrote(runningVar); Wrote(saveMean); Wrote(saveInvStd);
        using (new OpTimer(this, "BatchNormReluForwardTraining"))
            BatchNormReluForwardTrainingCore(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);
    }

    /// <summary>y = max(BN(x), 0) with the running statistics (inference-mode BN, then a ReLU).</summary>
    public void BatchNormReluForwardInference(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double epsilon)
    {
        CheckBatchNorm(x, y, gamma, beta, runningMean, runningVar, epsilon);
        Wrote(y);
        using (new OpTimer(this, "BatchNormReluForwardInference")) BatchNormReluForwardInferenceCore(x, y, gamma, beta, runningMean, runningVar, epsilon);
    }

    /// <summary>
    /// The backward pass of y = max(BN(x), 0): the ReLU's gradient (dy where y &gt; 0) fed to
    /// <see cref="BatchNormBackward"/>, without writing it out where the backend can. <paramref name="dy"/>
    /// may be overwritten (backends that run the two steps apart mask it in place).
    /// </summary>
    public void BatchNormReluBackward(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate)
    {
        Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
        CheckBatchNormBackward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, epsilon);
        Wrote(dy); Wrote(dx); Wrote(dGamma); Wrote(dBeta);
        using (new OpTimer(this, "BatchNormReluBackward"))
            BatchNormReluBackwardCore(x, y, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, epsilon, accumulate);
    }

    /// <summary>
    /// Folds an inference-mode BN into the convolution before it: with s = gamma/sqrt(var + eps)
    /// and t = beta - mean*s (each computed in double, rounded once), foldedWeight[k] = weight[k] * s[k]
    /// and foldedBias[k] = t[k] + bias[k] * s[k] (t[k] alone when the convolution has no bias), so
    /// conv(x, foldedWeight) + foldedBias equals BN(conv(x, weight) + bias) up to float rounding.
    /// weight is (K, C, R, S); <paramref name="bias"/> (a default tensor when there is none) and the rest have K values.
    /// </summary>
    public void FoldBatchNorm(Tensor weight, Tensor bias, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon,
        Tensor foldedWeight, Tensor foldedBias)
    {
        if (!bias.IsNull)
        {
            Own(bias, nameof(bias));
            RequireLength(bias, weight.Shape.N, nameof(bias), "one value per output channel");
        }
        Own(weight, nameof(weight)); Own(foldedWeight, nameof(foldedWeight)); Own(foldedBias, nameof(foldedBias));
        RequireFloat(weight, nameof(weight));
        RequireShape(foldedWeight, weight.Shape, nameof(foldedWeight));
        int k = weight.Shape.N;
        RequireLength(gamma, k, nameof(gamma), "one value per output channel");
        RequireLength(beta, k, nameof(beta), "one value per output channel");
        RequireLength(runningMean, k, nameof(runningMean), "one value per output channel");
        RequireLength(runningVar, k, nameof(runningVar), "one value per output channel");
        RequireLength(foldedBias, k, nameof(foldedBias), "one value per output channel");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon must be > 0; got {epsilon}.");
        Wrote(foldedWeight); Wrote(foldedBias);
        using (new OpTimer(this, "FoldBatchNorm")) FoldBatchNormCore(weight, bias, gamma, beta, runningMean, runningVar, epsilon, foldedWeight, foldedBias);
    }

    // ---------------------------------------------------------------- batch norm over several ranks' shards (synchronised BN)
    // Training-mode BN whose batch is split over ranks needs the whole batch's statistics: each rank
    // reduces its shard (BatchNormMoments, BatchNormBackwardReduce), the ranks combine the per-channel
    // results (an all-reduce, then BatchNormMergeShards forward), and each rank finishes its shard with
    // the combined values (the forward as inference-mode BN with the batch's mean and biased variance,
    // the backward with BatchNormBackwardElementwise).
    // Run on one whole batch, the three steps give BatchNormForwardTraining and BatchNormBackward.

    /// <summary>
    /// Per-channel mean and M2 (sum of squared deviations from that mean) of <paramref name="x"/> over
    /// N, H and W: this shard's share of a batch's statistics, in the form Chan's formula merges.
    /// Summed in double about one of the channel's own values (no cancellation), each rounded once.
    /// </summary>
    public void BatchNormMoments(Tensor x, Tensor mean, Tensor m2)
    {
        Own(x, nameof(x)); Own(mean, nameof(mean)); Own(m2, nameof(m2));
        RequireFloat(x, nameof(x));
        int c = x.Shape.C;
        RequireLength(mean, c, nameof(mean), "one value per channel");
        RequireLength(m2, c, nameof(m2), "one value per channel");
        if (x.Length == 0) throw new ArgumentException($"Batch-norm moments need at least one value per channel; got {x.Shape}.", nameof(x));
        Wrote(mean); Wrote(m2);
        using (new OpTimer(this, "BatchNormMoments")) BatchNormMomentsCore(x, mean, m2);
    }

    /// <summary>
    /// The reduction half of BN's backward on this shard: per channel sumDy = Σ dy and
    /// sumDyXhat = Σ dy·xhat with xhat = (x - saveMean)·saveInvStd (written), and the same values
    /// added to dBeta and dGamma. With <paramref name="y"/> (the output of a ReLU fused after the BN;
    /// a default tensor when there is none) dy is first masked where y &lt;= 0.
    /// </summary>
    public void BatchNormBackwardReduce(Tensor x, Tensor y, Tensor dy, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, Tensor dGamma, Tensor dBeta)
    {
        Own(x, nameof(x)); Own(dy, nameof(dy));
        RequireShape(dy, x.Shape, nameof(dy));
        CheckFusedReluOutput(x, y);
        int c = x.Shape.C;
        RequireLength(saveMean, c, nameof(saveMean), "one value per channel");
        RequireLength(saveInvStd, c, nameof(saveInvStd), "one value per channel");
        RequireLength(sumDy, c, nameof(sumDy), "one value per channel");
        RequireLength(sumDyXhat, c, nameof(sumDyXhat), "one value per channel");
        RequireLength(dGamma, c, nameof(dGamma), "one value per channel");
        RequireLength(dBeta, c, nameof(dBeta), "one value per channel");
        Wrote(sumDy); Wrote(sumDyXhat); Wrote(dGamma); Wrote(dBeta);
        using (new OpTimer(this, "BatchNormBackwardReduce")) BatchNormBackwardReduceCore(x, y, dy, saveMean, saveInvStd, sumDy, sumDyXhat, dGamma, dBeta);
    }

    /// <summary>
    /// The elementwise half of BN's backward: dx = gamma·saveInvStd·(dy - sumDy/count - xhat·sumDyXhat/count)
    /// per channel (overwrite unless <paramref name="accumulate"/>), with sumDy and sumDyXhat the
    /// batch's Σ dy and Σ dy·xhat and <paramref name="count"/> its values per channel (over several
    /// ranks whose dy are their shard-mean losses' gradients: the sums weighted by shard/batch and
    /// this shard's own count, which puts dx in this shard's scale).
    /// With <paramref name="y"/> (a fused ReLU's output, or a default tensor) dy is masked where y &lt;= 0.
    /// </summary>
    public void BatchNormBackwardElementwise(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, double count, Tensor dx, bool accumulate)
    {
        Own(x, nameof(x)); Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, x.Shape, nameof(dy));
        RequireShape(dx, x.Shape, nameof(dx));
        CheckFusedReluOutput(x, y);
        int c = x.Shape.C;
        RequireLength(gamma, c, nameof(gamma), "one value per channel");
        RequireLength(saveMean, c, nameof(saveMean), "one value per channel");
        RequireLength(saveInvStd, c, nameof(saveInvStd), "one value per channel");
        RequireLength(sumDy, c, nameof(sumDy), "one value per channel");
        RequireLength(sumDyXhat, c, nameof(sumDyXhat), "one value per channel");
        if (!(count > 0) || !double.IsFinite(count)) throw new ArgumentOutOfRangeException(nameof(count), $"The value count must be a finite number > 0; got {count}.");
        Wrote(dx);
        using (new OpTimer(this, "BatchNormBackwardElementwise"))
            BatchNormBackwardElementwiseCore(x, y, dy, gamma, saveMean, saveInvStd, sumDy, sumDyXhat, count, dx, accumulate);
    }

    /// <summary>
    /// Merges the ranks' shard statistics gathered in <paramref name="shards"/> — <paramref name="ranks"/>
    /// rows of (count, C means, C M2s), as <see cref="BatchNormMoments"/> writes them, count 0 for a
    /// rank without samples — with Chan's formula in rank order, in double; then, as
    /// <see cref="BatchNormForwardTraining"/> does for one batch: saveMean = the batch mean,
    /// saveInvStd = 1/sqrt(biased variance + eps), running = (1 - factor)·running + factor·batch with
    /// the unbiased variance; and batchVar = the biased variance (for normalising the shards).
    /// </summary>
    public void BatchNormMergeShards(Tensor shards, int ranks, double factor, double epsilon, Tensor runningMean, Tensor runningVar,
        Tensor saveMean, Tensor saveInvStd, Tensor batchVar)
    {
        Own(shards, nameof(shards)); Own(runningMean, nameof(runningMean)); Own(runningVar, nameof(runningVar));
        Own(saveMean, nameof(saveMean)); Own(saveInvStd, nameof(saveInvStd)); Own(batchVar, nameof(batchVar));
        RequireFloat(shards, nameof(shards));
        int c = checked((int)runningMean.Length);
        if (ranks < 1) throw new ArgumentOutOfRangeException(nameof(ranks), $"Need at least one rank; got {ranks}.");
        RequireLength(shards, (long)ranks * (1 + 2 * c), nameof(shards), $"{ranks} rows of (count, {c} means, {c} M2s)");
        RequireLength(runningVar, c, nameof(runningVar), "as many channels as runningMean");
        RequireLength(saveMean, c, nameof(saveMean), "as many channels as runningMean");
        RequireLength(saveInvStd, c, nameof(saveInvStd), "as many channels as runningMean");
        RequireLength(batchVar, c, nameof(batchVar), "as many channels as runningMean");
        if (!(factor >= 0 && factor <= 1))
            throw new ArgumentOutOfRangeException(nameof(factor), $"The running-average factor must be in [0, 1]; got {factor}.");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon must be > 0; got {epsilon}.");
        Wrote(runningMean); Wrote(runningVar); Wrote(saveMean); Wrote(saveInvStd); Wrote(batchVar);
        using (new OpTimer(this, "BatchNormMergeShards"))
            BatchNormMergeShardsCore(shards, ranks, factor, epsilon, runningMean, runningVar, saveMean, saveInvStd, batchVar);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="BatchNormForwardTraining"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double factor, double epsilon, Tensor saveMean, Tensor saveInvStd);
    /// <summary>The backend's implementation of <see cref="BatchNormForwardInference"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double epsilon);
    /// <summary>The backend's implementation of <see cref="BatchNormBackward"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate);
    /// <summary>
    /// The backend's implementation of <see cref="BatchNormReluForwardTraining"/>; by default the
    /// two ops one after the other (the ReLU in place on y).
    /// </summary>
    private protected virtual void BatchNormReluForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        BatchNormForwardTrainingCore(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);
        ReluForwardCore(y, y);
    }

    /// <summary>The backend's implementation of <see cref="BatchNormReluForwardInference"/>; by default the two ops one after the other.</summary>
    private protected virtual void BatchNormReluForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double epsilon)
    {
        BatchNormForwardInferenceCore(x, y, gamma, beta, runningMean, runningVar, epsilon);
        ReluForwardCore(y, y);
    }

    /// <summary>
    /// The backend's implementation of <see cref="BatchNormReluBackward"/>; by default the ReLU's
    /// gradient masks dy in place, then <see cref="BatchNormBackwardCore"/> runs on it.
    /// </summary>
    private protected virtual void BatchNormReluBackwardCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate)
    {
        ReluBackwardCore(y, dy, dy, accumulate: false);
        BatchNormBackwardCore(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, epsilon, accumulate);
    }

    /// <summary>The backend's implementation of <see cref="FoldBatchNorm"/>; the arguments are already validated.</summary>
    private protected abstract void FoldBatchNormCore(Tensor weight, Tensor bias, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon,
        Tensor foldedWeight, Tensor foldedBias);

    /// <summary>The backend's implementation of <see cref="BatchNormMergeStatistics"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon,
        long batchCount, long previousCount, Tensor accMean, Tensor accM2);

    /// <summary>The backend's implementation of <see cref="BatchNormMoments"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormMomentsCore(Tensor x, Tensor mean, Tensor m2);

    /// <summary>The backend's implementation of <see cref="BatchNormBackwardReduce"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormBackwardReduceCore(Tensor x, Tensor y, Tensor dy, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, Tensor dGamma, Tensor dBeta);

    /// <summary>The backend's implementation of <see cref="BatchNormBackwardElementwise"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormBackwardElementwiseCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, double count, Tensor dx, bool accumulate);

    /// <summary>The backend's implementation of <see cref="BatchNormMergeShards"/>; the arguments are already validated.</summary>
    private protected abstract void BatchNormMergeShardsCore(Tensor shards, int ranks, double factor, double epsilon, Tensor runningMean, Tensor runningVar,
        Tensor saveMean, Tensor saveInvStd, Tensor batchVar);

    // ---------------------------------------------------------------- validation helpers

    private void CheckBatchNorm(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
        int c = x.Shape.C;
        RequireLength(gamma, c, nameof(gamma), "one value per channel");
        RequireLength(beta, c, nameof(beta), "one value per channel");
        RequireLength(runningMean, c, nameof(runningMean), "one value per channel");
        RequireLength(runningVar, c, nameof(runningVar), "one value per channel");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon must be > 0; got {epsilon}.");
    }

    private void CheckBatchNormTraining(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        CheckBatchNorm(x, y, gamma, beta, runningMean, runningVar, epsilon);
        RequireLength(saveMean, x.Shape.C, nameof(saveMean), "one value per channel");
        RequireLength(saveInvStd, x.Shape.C, nameof(saveInvStd), "one value per channel");
        if (!(factor >= 0 && factor <= 1))
            throw new ArgumentOutOfRangeException(nameof(factor), $"The running-average factor must be in [0, 1]; got {factor}.");
        if ((long)x.Shape.N * x.Shape.H * x.Shape.W < 2)
            throw new ArgumentException($"Training-mode batch norm needs at least 2 values per channel; got {x.Shape}.", nameof(x));
    }

    private void CheckBatchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon must be > 0; got {epsilon}.");
        Own(x, nameof(x)); Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, x.Shape, nameof(dy));
        RequireShape(dx, x.Shape, nameof(dx));
        int c = x.Shape.C;
        RequireLength(gamma, c, nameof(gamma), "one value per channel");
        RequireLength(saveMean, c, nameof(saveMean), "one value per channel");
        RequireLength(saveInvStd, c, nameof(saveInvStd), "one value per channel");
        RequireLength(dGamma, c, nameof(dGamma), "one value per channel");
        RequireLength(dBeta, c, nameof(dBeta), "one value per channel");
    }

    private void CheckFusedReluOutput(Tensor x, Tensor y)
    {
        if (y.IsNull) return;
        Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
    }
}
