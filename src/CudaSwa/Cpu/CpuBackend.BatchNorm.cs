using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd) =>
        CpuBatchNorm.ForwardTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);

    /// <inheritdoc/>
    private protected override void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon) =>
        CpuBatchNorm.ForwardInference(x, y, gamma, beta, runningMean, runningVar, epsilon);

    /// <inheritdoc/>
    private protected override void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx, Tensor dGamma, Tensor dBeta,
        double epsilon, bool accumulate) =>
        CpuBatchNorm.Backward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, accumulate);

    /// <inheritdoc/>
    private protected override void BatchNormReluForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd) =>
        CpuBatchNorm.ForwardTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd, relu: true);

    /// <inheritdoc/>
    private protected override void BatchNormReluForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon) =>
        CpuBatchNorm.ForwardInference(x, y, gamma, beta, runningMean, runningVar, epsilon, relu: true);

    /// <inheritdoc/>
    private protected override void BatchNormReluBackwardCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate) =>
        CpuBatchNorm.Backward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, accumulate, relu: true, y);

    /// <inheritdoc/>
    private protected override void FoldBatchNormCore(Tensor weight, Tensor bias, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon,
        Tensor foldedWeight, Tensor foldedBias) =>
        CpuBatchNorm.Fold(weight, bias, gamma, beta, runningMean, runningVar, epsilon, foldedWeight, foldedBias);

    /// <inheritdoc/>
    private protected override void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon, long batchCount, long previousCount, Tensor accMean, Tensor accM2) =>
        CpuBatchNorm.MergeStatistics(saveMean, saveInvStd, epsilon, batchCount, previousCount, accMean, accM2);

    /// <inheritdoc/>
    private protected override void BatchNormMomentsCore(Tensor x, Tensor mean, Tensor m2) => CpuBatchNorm.Moments(x, mean, m2);

    /// <inheritdoc/>
    private protected override void BatchNormBackwardReduceCore(Tensor x, Tensor y, Tensor dy, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, Tensor dGamma, Tensor dBeta) =>
        CpuBatchNorm.BackwardReduce(x, y, dy, saveMean, saveInvStd, sumDy, sumDyXhat, dGamma, dBeta);

    /// <inheritdoc/>
    private protected override void BatchNormBackwardElementwiseCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, double count, Tensor dx, bool accumulate) =>
        CpuBatchNorm.BackwardElementwise(x, y, dy, gamma, saveMean, saveInvStd, sumDy, sumDyXhat, count, dx, accumulate);

    /// <inheritdoc/>
    private protected override void BatchNormMergeShardsCore(Tensor shards, int ranks, double factor, double epsilon, Tensor runningMean, Tensor runningVar,
        Tensor saveMean, Tensor saveInvStd, Tensor batchVar) =>
        CpuBatchNorm.MergeShards(shards, ranks, factor, epsilon, runningMean, runningVar, saveMean, saveInvStd, batchVar);
}
