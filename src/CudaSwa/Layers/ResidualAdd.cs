namespace CudaSwa.Layers;

/// <summary>y = a + b, the join of a residual block. Its gradient flows unchanged to both inputs.</summary>
public sealed class ResidualAdd : Layer
{
    internal ResidualAdd(Node a, Node b) : base("", [a, b]) { }

    /// <inheritdoc/>
    public override string Kind => "Add";

    /// <summary>The ReLU right after this add, computed in the same pass (max(a + b, 0) into the ReLU's output); null when not fused.</summary>
    internal Relu? FusedRelu { get; set; }

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx)
    {
        if (FusedRelu is { } relu) ctx.Backend.AddRelu(In(0, ctx), In(1, ctx), relu.Output.Value.WithBatch(ctx.Batch));
        else ctx.Backend.Add(In(0, ctx), In(1, ctx), Out(ctx));
    }

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        if (FusedRelu is { } relu)
        {
            ctx.Backend.AddReluBackward(relu.Output.Value.WithBatch(ctx.Batch), relu.Output.Gradient.WithBatch(ctx.Batch),
                InGrad(0, ctx), AccumulateInput[0], InGrad(1, ctx), AccumulateInput[1]);
            return;
        }
        var dy = OutGrad(ctx);
        for (int i = 0; i < 2; i++)
            if (Inputs[i].RequiresGradient)
                ctx.Backend.AccumulateGradient(dy, InGrad(i, ctx), AccumulateInput[i]);
    }
}
