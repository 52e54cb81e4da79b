namespace CudaSwa.Layers;

/// <summary>Mean over the spatial axes: (N, C, H, W) to (N, C, 1, 1).</summary>
public sealed class GlobalAvgPool : Layer
{
    internal GlobalAvgPool(Node input) : base("", [input]) { }

    /// <inheritdoc/>
    public override string Kind => "GlobalAvgPool";

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx) =>
        ctx.Backend.GlobalAveragePoolForward(In(0, ctx), Out(ctx).Reshape(new Tensors.TensorShape(ctx.Batch, Output.Channels)));

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        if (Inputs[0].RequiresGradient)
            ctx.Backend.GlobalAveragePoolBackward(OutGrad(ctx).Reshape(new Tensors.TensorShape(ctx.Batch, Output.Channels)), InGrad(0, ctx), AccumulateInput[0]);
    }
}
