using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>
/// Where a training-mode <see cref="BatchNorm2d"/> gets its batch statistics when the batch is
/// spread over several processes (synchronised BN): the layer hands its tensors over and the
/// implementation (in Distributed, which knows the ranks) exchanges the shards' statistics and
/// gradient sums. Declared here so the layers need nothing from above them.
/// </summary>
internal interface IBatchNormSync
{
    /// <summary>
    /// Training forward of one BN layer on this process's shard <paramref name="x"/> with the whole
    /// batch's statistics (y = BN(x), or max(BN(x), 0) with <paramref name="relu"/>); updates the
    /// running statistics with <paramref name="factor"/> and saves the batch's mean and inverse std.
    /// </summary>
    void Forward(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd, bool relu);

    /// <summary>
    /// Backward of one BN layer on this shard from the whole batch's gradient sums: dx (overwritten
    /// unless <paramref name="accumulate"/>), dGamma and dBeta += this shard's share.
    /// </summary>
    void Backward(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, bool accumulate);
}
