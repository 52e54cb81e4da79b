using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>2-D convolution, square kernel, zero padding, optional per-channel bias. Weight (K, C, R, R).</summary>
public sealed class Conv2d : Layer
{
    internal Conv2d(string name, Node input, int outChannels, int kernel, int stride, int padding, int weightIndex, int biasIndex)
        : base(name, [input])
    {
        OutChannels = outChannels;
        Kernel = kernel;
        Spec = new ConvSpec(stride, padding);
        WeightIndex = weightIndex;
        BiasIndex = biasIndex;
    }

    /// <inheritdoc/>
    public override string Kind => "Conv2d";
    /// <summary>Output channels K: the number of filters.</summary>
    public int OutChannels { get; }
    /// <summary>Kernel height and width R, in pixels.</summary>
    public int Kernel { get; }
    /// <summary>Stride and zero padding.</summary>
    public ConvSpec Spec { get; }
    /// <summary>Index of the weight (K, C, R, R) in the parameter arena.</summary>
    public int WeightIndex { get; }

    /// <summary>-1 when the convolution has no bias.</summary>
    public int BiasIndex { get; }

    /// <summary>The convolution's geometry for a batch of <paramref name="batch"/> samples.</summary>
    public ConvGeometry Geometry(int batch)
    {
        var x = Inputs[0];
        return new ConvGeometry(batch, x.Channels, x.Height, x.Width, OutChannels, Kernel, Kernel, Spec.Stride, Spec.Padding);
    }

    /// <inheritdoc/>
    protected internal override void Prepare(Network network, int batch) => network.Backend.PrepareConvolution(Geometry(batch));

    /// <summary>The batch norm right after this convolution, absorbed into it in evaluation (see <see cref="Network"/>); null when none.</summary>
    internal BatchNorm2d? FoldedBatchNorm { get; set; }

    /// <summary>The folded weight and bias (with <see cref="FoldedBatchNorm"/>), kept current by the network.</summary>
    internal Tensor FoldedWeight, FoldedBias;

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx)
    {
        if (ctx.Mode == RunMode.Eval && FoldedBatchNorm is { } bn)
        {
            // conv(x, w * s) + (beta - mean * s): the batch norm's output (and its ReLU's, when fused) in one pass over y.
            var target = bn.Result.Value.WithBatch(ctx.Batch);
            ctx.Backend.ConvolutionBiasActivationForward(In(0, ctx), FoldedWeight, FoldedBias, relu: bn.FusedRelu is not null, target, Spec);
            return;
        }
        var y = Out(ctx);
        ctx.Backend.ConvolutionForward(In(0, ctx), ctx.Parameters[WeightIndex], y, Spec);
        if (BiasIndex >= 0) ctx.Backend.AddChannelBias(y, ctx.Parameters[BiasIndex]);
    }

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        var dy = OutGrad(ctx);
        if (BiasIndex >= 0) ctx.Backend.ChannelBiasBackward(dy, ctx.Gradients[BiasIndex]);
        ctx.Backend.ConvolutionBackwardFilter(In(0, ctx), dy, ctx.Gradients[WeightIndex], Spec);
        if (Inputs[0].RequiresGradient)
            ctx.Backend.ConvolutionBackwardData(dy, ctx.Parameters[WeightIndex], InGrad(0, ctx), Spec, AccumulateInput[0]);
    }
}
