namespace CudaSwa.Layers;

/// <summary>y = a + b, the join of a residual block. Its gradient flows unchanged to both inputs.</summary>
public sealed class ResidualAdd : Layer
{
    internal ResidualAdd(Node a, Node b) : base("", [a, b]) { }

    /// <inheritdoc/>
    public override string Kind => "Add";

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx) => ctx.Backend.Add(In(0, ctx), In(1, ctx), Out(ctx));

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        var dy = OutGrad(ctx);
        for (int i = 0; i < 2; i++)
            if (Inputs[i].RequiresGradient)
                ctx.Backend.AccumulateGradient(dy, InGrad(i, ctx), AccumulateInput[i]);
    }
}
