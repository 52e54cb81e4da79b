namespace CudaSwa.Cuda;

/// <summary>
/// Every kernel of kernels/*.cu, declared once: file, extern "C" name, and an argument struct
/// whose fields are the kernel's parameters in order (same names as in the .cu file). A launch
/// passes that struct, so a missing, extra or mistyped argument is a compile error. Each kernel
/// names its CPU twin; its tests are EmulatedKernelTests (the same source run on the CPU) and the
/// op tests of the CUDA backend.
/// </summary>
internal static class Kernels
{
    // ---------------------------------------------------------------- pointwise.cu (twins: Cpu/CpuPointwise.cs)

    public static readonly KernelSpec<ReluForwardArgs> ReluForward = new("pointwise.cu", "relu_forward");
    public static readonly KernelSpec<ReluBackwardArgs> ReluBackward = new("pointwise.cu", "relu_backward");
    public static readonly KernelSpec<AddArgs> Add = new("pointwise.cu", "add");
    public static readonly KernelSpec<AddArgs> AddRelu = new("pointwise.cu", "add_relu");
    public static readonly KernelSpec<PointOnLineArgs> PointOnLine = new("pointwise.cu", "point_on_line");
    public static readonly KernelSpec<AddChannelBiasReluArgs> AddChannelBiasRelu = new("pointwise.cu", "add_channel_bias_relu");
    public static readonly KernelSpec<AccumulateArgs> Accumulate = new("pointwise.cu", "accumulate");
    public static readonly KernelSpec<AddRowBiasArgs> AddRowBias = new("pointwise.cu", "add_row_bias");
    public static readonly KernelSpec<ColumnSumAccumulateArgs> ColumnSumAccumulate = new("pointwise.cu", "column_sum_accumulate");
    public static readonly KernelSpec<DropoutForwardArgs> DropoutForward = new("pointwise.cu", "dropout_forward");
    public static readonly KernelSpec<DropoutBackwardArgs> DropoutBackward = new("pointwise.cu", "dropout_backward");

    // ---------------------------------------------------------------- pooling.cu (twins: Cpu/CpuPooling.cs)

    public static readonly KernelSpec<GlobalAvgPoolForwardArgs> GlobalAvgPoolForward = new("pooling.cu", "global_avg_pool_forward");
    public static readonly KernelSpec<GlobalAvgPoolBackwardArgs> GlobalAvgPoolBackward = new("pooling.cu", "global_avg_pool_backward");
    public static readonly KernelSpec<MaxPoolForwardArgs> MaxPoolForward = new("pooling.cu", "max_pool_forward");
    public static readonly KernelSpec<MaxPoolBackwardArgs> MaxPoolBackward = new("pooling.cu", "max_pool_backward");

    // ---------------------------------------------------------------- loss.cu (twins: Cpu/CpuLoss.cs)

    public static readonly KernelSpec<SoftmaxCrossEntropyArgs> SoftmaxCrossEntropy = new("loss.cu", "softmax_cross_entropy");
    public static readonly KernelSpec<AddRowStatsArgs> AddRowStats = new("loss.cu", "add_row_stats");
    public static readonly KernelSpec<SoftmaxArgs> Softmax = new("loss.cu", "softmax");

    // ---------------------------------------------------------------- optim.cu (twins: Cpu/CpuOptim.cs)

    public static readonly KernelSpec<AverageUpdateArgs> AverageUpdate = new("optim.cu", "average_update");
    public static readonly KernelSpec<SgdStepArgs> SgdStep = new("optim.cu", "sgd_step");

    // ---------------------------------------------------------------- swag.cu (twins: CpuSwag.Collect, CpuSwag.Sample)

    public static readonly KernelSpec<SwagCollectArgs> SwagCollect = new("swag.cu", "swag_collect");
    public static readonly KernelSpec<SwagSampleArgs> SwagSample = new("swag.cu", "swag_sample");

    // ---------------------------------------------------------------- batchnorm.cu (twins: CpuBatchNorm.MergeStatistics, Fold, Moments, BackwardReduce, BackwardElementwise, MergeShards)

    public static readonly KernelSpec<BatchNormMergeStatisticsArgs> BatchNormMergeStatistics = new("batchnorm.cu", "bn_merge_statistics");
    public static readonly KernelSpec<BatchNormFoldArgs> BatchNormFold = new("batchnorm.cu", "batchnorm_fold");
    public static readonly KernelSpec<BatchNormMomentsArgs> BatchNormMoments = new("batchnorm.cu", "bn_moments");
    public static readonly KernelSpec<BatchNormBackwardReduceArgs> BatchNormBackwardReduce = new("batchnorm.cu", "bn_backward_reduce");
    public static readonly KernelSpec<BatchNormBackwardElementwiseArgs> BatchNormBackwardElementwise = new("batchnorm.cu", "bn_backward_elementwise");
    public static readonly KernelSpec<BatchNormMergeShardsArgs> BatchNormMergeShards = new("batchnorm.cu", "bn_merge_shards");

    // ---------------------------------------------------------------- augment.cu (twin: Cpu/CpuAugment.cs)

    public static readonly KernelSpec<AugmentBatchArgs> AugmentBatch = new("augment.cu", "augment_batch");

    /// <summary>The whole table, in declaration order.</summary>
    public static IReadOnlyList<KernelSpec> All { get; } =
    [
        ReluForward, ReluBackward, Add, AddRelu, PointOnLine, AddChannelBiasRelu, Accumulate, AddRowBias, ColumnSumAccumulate, DropoutForward, DropoutBackward,
        GlobalAvgPoolForward, GlobalAvgPoolBackward, MaxPoolForward, MaxPoolBackward,
        SoftmaxCrossEntropy, AddRowStats, Softmax,
        AverageUpdate, SgdStep,
        SwagCollect, SwagSample,
        BatchNormMergeStatistics, BatchNormFold, BatchNormMoments, BatchNormBackwardReduce, BatchNormBackwardElementwise, BatchNormMergeShards,
        AugmentBatch,
    ];
}

internal readonly record struct ReluForwardArgs(DevicePtr x, DevicePtr y, long n);
internal readonly record struct ReluBackwardArgs(DevicePtr y, DevicePtr dy, DevicePtr dx, long n, Flag accumulate);
internal readonly record struct AddArgs(DevicePtr a, DevicePtr b, DevicePtr y, long n);
internal readonly record struct PointOnLineArgs(DevicePtr origin, DevicePtr direction, float s, DevicePtr y, long n);
internal readonly record struct AddChannelBiasReluArgs(DevicePtr y, DevicePtr bias, long n, int channels, int hw);
internal readonly record struct AccumulateArgs(DevicePtr src, DevicePtr dst, long n, Flag accumulate);
internal readonly record struct AddRowBiasArgs(DevicePtr y, DevicePtr b, long rows, int cols);
internal readonly record struct ColumnSumAccumulateArgs(DevicePtr dy, DevicePtr db, int rows, int cols);
internal readonly record struct DropoutForwardArgs(DevicePtr x, DevicePtr y, long n, float p, uint seed_lo, uint seed_hi, uint stream_lo, uint stream_hi);
internal readonly record struct DropoutBackwardArgs(DevicePtr dy, DevicePtr dx, long n, float p, uint seed_lo, uint seed_hi, uint stream_lo, uint stream_hi, Flag accumulate);

internal readonly record struct GlobalAvgPoolForwardArgs(DevicePtr x, DevicePtr y, long planes, int hw);
internal readonly record struct GlobalAvgPoolBackwardArgs(DevicePtr dy, DevicePtr dx, long planes, int hw, Flag accumulate);
internal readonly record struct MaxPoolForwardArgs(DevicePtr x, DevicePtr y, long planes, int h, int w);
internal readonly record struct MaxPoolBackwardArgs(DevicePtr x, DevicePtr dy, DevicePtr dx, long planes, int h, int w, Flag accumulate);

internal readonly record struct SoftmaxCrossEntropyArgs(DevicePtr z, DevicePtr labels, DevicePtr dz, DevicePtr row_loss, DevicePtr row_correct, int n, int k);
internal readonly record struct AddRowStatsArgs(DevicePtr row_loss, DevicePtr row_correct, int n, DevicePtr stats);
internal readonly record struct SoftmaxArgs(DevicePtr z, DevicePtr p, int n, int k);

/// <summary>The multi-tensor SWA/EMA update: per-pair tables (averages, currents, lengths) and per-chunk tables (pair, first element).</summary>
internal readonly record struct AverageUpdateArgs(DevicePtr averages, DevicePtr currents, DevicePtr lengths, DevicePtr chunk_pair, DevicePtr chunk_start,
    int chunk_size, float alpha);
internal readonly record struct SwagCollectArgs(DevicePtr w, DevicePtr mean, DevicePtr sq_mean, DevicePtr deviation, long n, float alpha);
internal readonly record struct SwagSampleArgs(DevicePtr mean, DevicePtr sq_mean, DevicePtr deviations, DevicePtr column_normals, int columns, long n,
    float diagonal_scale, float low_rank_scale, float variance_floor, uint seed_lo, uint seed_hi, uint sample, DevicePtr @out);
internal readonly record struct SgdStepArgs(DevicePtr w, DevicePtr g, DevicePtr v, long n, float lr, float momentum, float wd, Flag nesterov);

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

internal readonly record struct AugmentBatchArgs(DevicePtr images, DevicePtr source_labels, DevicePtr indices, DevicePtr x, DevicePtr labels,
    int batch, int channels, int h, int w, int pad, Flag crop, Flag flip, Flag reflect, int epoch, uint seed_lo, uint seed_hi,
    float scale0, float scale1, float scale2, float scale3, float shift0, float shift1, float shift2, float shift3);
