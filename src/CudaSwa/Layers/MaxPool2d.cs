namespace CudaSwa.Layers;

/// <summary>2x2 max pooling with stride 2 (VGG's 'M').</summary>
public sealed class MaxPool2d : Layer
{
    internal MaxPool2d(Node input) : base("", [input]) { }

    /// <inheritdoc/>
    public override string Kind => "MaxPool2d";

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx) => ctx.Backend.MaxPoolForward(In(0, ctx), Out(ctx));

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        if (Inputs[0].RequiresGradient)
            ctx.Backend.MaxPoolBackward(In(0, ctx), OutGrad(ctx), InGrad(0, ctx), AccumulateInput[0]);
    }
}
