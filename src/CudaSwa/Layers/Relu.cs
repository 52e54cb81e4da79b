namespace CudaSwa.Layers;

/// <summary>max(x, 0). The backward pass reads the output, so the input need not be kept.</summary>
public sealed class Relu : Layer
{
    internal Relu(Node input) : base("", [input]) { }

    /// <inheritdoc/>
    public override string Kind => "ReLU";

    /// <summary>Whether the layer before (a batch norm or a residual add) computes this ReLU in its own pass; then this layer does nothing itself.</summary>
    internal bool Fused { get; set; }

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx)
    {
        if (!Fused) ctx.Backend.ReluForward(In(0, ctx), Out(ctx));
    }

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        if (!Fused && Inputs[0].RequiresGradient)
            ctx.Backend.ReluBackward(Out(ctx), OutGrad(ctx), InGrad(0, ctx), AccumulateInput[0]);
    }
}
