using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- batch norm (cuDNN)

    /// <inheritdoc/>
    private protected override void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        Ctx();
        var cudnn = Cudnn("BatchNormForwardTraining");
        float one = 1, zero = 0;
        var d = Nchw(x);
        Dnn.Check(Dnn.cudnnBatchNormalizationForwardTraining(cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, P(x).Address, d, P(y).Address,
            Descriptor(1, x.Shape.C, 1, 1), P(gamma).Address, P(beta).Address, factor, P(runningMean).Address, P(runningVar).Address, epsilon,
            P(saveMean).Address, P(saveInvStd).Address));
        AfterVendorCall("cudnnBatchNormalizationForwardTraining");
    }

    /// <inheritdoc/>
    private protected override void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon)
    {
        Ctx();
        var cudnn = Cudnn("BatchNormForwardInference");
        float one = 1, zero = 0;
        var d = Nchw(x);
        Dnn.Check(Dnn.cudnnBatchNormalizationForwardInference(cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, P(x).Address, d, P(y).Address,
            Descriptor(1, x.Shape.C, 1, 1), P(gamma).Address, P(beta).Address, P(runningMean).Address, P(runningVar).Address, epsilon));
        AfterVendorCall("cudnnBatchNormalizationForwardInference");
    }

    /// <inheritdoc/>
    private protected override void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx,
        Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate)
    {
        Ctx();
        var cudnn = Cudnn("BatchNormBackward");
        float one = 1, dataBeta = accumulate ? 1 : 0, paramBeta = 1;
        var d = Nchw(x);
        Dnn.Check(Dnn.cudnnBatchNormalizationBackward(cudnn, CudnnApi.BatchNormSpatial, &one, &dataBeta, &one, &paramBeta,
            d, P(x).Address, d, P(dy).Address, d, P(dx).Address, Descriptor(1, x.Shape.C, 1, 1), P(gamma).Address, P(dGamma).Address, P(dBeta).Address,
            epsilon, P(saveMean).Address, P(saveInvStd).Address));
        AfterVendorCall("cudnnBatchNormalizationBackward");
    }

    /// <inheritdoc/>
    private protected override void FoldBatchNormCore(Tensor weight, Tensor bias, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon,
        Tensor foldedWeight, Tensor foldedBias)
    {
        Ctx();
        Launch(Kernels.BatchNormFold, Grid(weight.Length), new(P(weight), bias.IsNull ? default : P(bias), P(gamma), P(beta), P(runningMean), P(runningVar),
            P(foldedWeight), P(foldedBias), weight.Length, weight.Length / weight.Shape.N, epsilon));
    }

    /// <inheritdoc/>
    private protected override void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon, long batchCount, long previousCount,
        Tensor accMean, Tensor accM2)
    {
        Ctx();
        int c = (int)saveMean.Length;
        Launch(Kernels.BatchNormMergeStatistics, GridExact(c), new(P(saveMean), P(saveInvStd), P(accMean), P(accM2), c, epsilon, batchCount, previousCount));
    }

    // ---------------------------------------------------------------- the per-shard halves of synchronised BN (batchnorm.cu)

    /// <inheritdoc/>
    private protected override void BatchNormMomentsCore(Tensor x, Tensor mean, Tensor m2)
    {
        Ctx();
        var s = x.Shape;
        Launch(Kernels.BatchNormMoments, (uint)s.C, new(P(x), P(mean), P(m2), s.N, s.C, s.H * s.W));
    }

    /// <inheritdoc/>
    private protected override void BatchNormBackwardReduceCore(Tensor x, Tensor y, Tensor dy, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, Tensor dGamma, Tensor dBeta)
    {
        Ctx();
        var s = x.Shape;
        Launch(Kernels.BatchNormBackwardReduce, (uint)s.C, new(P(x), y.IsNull ? DevicePtr.Null : P(y), P(dy), P(saveMean), P(saveInvStd),
            P(sumDy), P(sumDyXhat), P(dGamma), P(dBeta), s.N, s.C, s.H * s.W));
    }

    /// <inheritdoc/>
    private protected override void BatchNormBackwardElementwiseCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor sumDy, Tensor sumDyXhat, double count, Tensor dx, bool accumulate)
    {
        Ctx();
        var s = x.Shape;
        Launch(Kernels.BatchNormBackwardElementwise, Grid(x.Length), new(P(x), y.IsNull ? DevicePtr.Null : P(y), P(dy), P(gamma), P(saveMean), P(saveInvStd),
            P(sumDy), P(sumDyXhat), count, P(dx), x.Length, s.C, s.H * s.W, accumulate));
    }

    /// <inheritdoc/>
    private protected override void BatchNormMergeShardsCore(Tensor shards, int ranks, double factor, double epsilon, Tensor runningMean, Tensor runningVar,
        Tensor saveMean, Tensor saveInvStd, Tensor batchVar)
    {
        Ctx();
        int c = (int)runningMean.Length;
        Launch(Kernels.BatchNormMergeShards, GridExact(c), new(P(shards), ranks, c, factor, epsilon, P(runningMean), P(runningVar), P(saveMean), P(saveInvStd), P(batchVar)));
    }

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of batchnorm.cu that this file launches; their CPU twins are in Cpu/CpuBackend.BatchNorm.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<BatchNormMergeStatisticsArgs> BatchNormMergeStatistics = new("batchnorm.cu", "bn_merge_statistics");
        public static readonly KernelSpec<BatchNormFoldArgs> BatchNormFold = new("batchnorm.cu", "batchnorm_fold");
        public static readonly KernelSpec<BatchNormMomentsArgs> BatchNormMoments = new("batchnorm.cu", "bn_moments");
        public static readonly KernelSpec<BatchNormBackwardReduceArgs> BatchNormBackwardReduce = new("batchnorm.cu", "bn_backward_reduce");
        public static readonly KernelSpec<BatchNormBackwardElementwiseArgs> BatchNormBackwardElementwise = new("batchnorm.cu", "bn_backward_elementwise");
        public static readonly KernelSpec<BatchNormMergeShardsArgs> BatchNormMergeShards = new("batchnorm.cu", "bn_merge_shards");
    }
}

internal readonly record struct BatchNormMergeStatisticsArgs(DevicePtr batch_mean, DevicePtr batch_inv_std, DevicePtr acc_mean, DevicePtr acc_m2, int channels,
    double eps, double batch_count, double previous_count);
internal readonly record struct BatchNormFoldArgs(DevicePtr weight, DevicePtr bias, DevicePtr gamma, DevicePtr beta, DevicePtr mean, DevicePtr var,
    DevicePtr folded_weight, DevicePtr folded_bias, long n, long per_filter, double eps);
internal readonly record struct BatchNormMomentsArgs(DevicePtr x, DevicePtr mean, DevicePtr m2, int n, int channels, int hw);
internal readonly record struct BatchNormBackwardReduceArgs(DevicePtr x, DevicePtr y, DevicePtr dy, DevicePtr save_mean, DevicePtr save_inv_std,
    DevicePtr sum_dy, DevicePtr sum_dy_xhat, DevicePtr d_gamma, DevicePtr d_beta, int n, int channels, int hw);
internal readonly record struct BatchNormBackwardElementwiseArgs(DevicePtr x, DevicePtr y, DevicePtr dy, DevicePtr gamma, DevicePtr save_mean,
    DevicePtr save_inv_std, DevicePtr sum_dy, DevicePtr sum_dy_xhat, double count, DevicePtr dx, long total, int channels, int hw, Flag accumulate);
internal readonly record struct BatchNormMergeShardsArgs(DevicePtr shards, int ranks, int channels, double factor, double eps, DevicePtr running_mean,
    DevicePtr running_var, DevicePtr save_mean, DevicePtr save_inv_std, DevicePtr batch_var);
