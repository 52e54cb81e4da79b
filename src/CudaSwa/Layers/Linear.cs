using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>Fully connected layer y = x W^T + b; weight (Out, In), the input flattened per sample.</summary>
public sealed class Linear : Layer
{
    internal Linear(string name, Node input, int outFeatures, int weightIndex, int biasIndex) : base(name, [input])
    {
        OutFeatures = outFeatures;
        WeightIndex = weightIndex;
        BiasIndex = biasIndex;
    }

    /// <inheritdoc/>
    public override string Kind => "Linear";
    /// <summary>Output features: the rows of the weight.</summary>
    public int OutFeatures { get; }
    /// <summary>Index of the weight (Out, In) in the parameter arena.</summary>
    public int WeightIndex { get; }
    /// <summary>Index of the bias (Out) in the parameter arena.</summary>
    public int BiasIndex { get; }

    private Tensor Flat(Tensor t, RunContext ctx) => t.Reshape(new TensorShape(ctx.Batch, (int)(t.Length / ctx.Batch)));

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx) =>
        ctx.Backend.LinearForward(Flat(In(0, ctx), ctx), ctx.Parameters[WeightIndex], ctx.Parameters[BiasIndex], Flat(Out(ctx), ctx));

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        var dy = Flat(OutGrad(ctx), ctx);
        ctx.Backend.LinearBackwardWeights(Flat(In(0, ctx), ctx), dy, ctx.Gradients[WeightIndex], ctx.Gradients[BiasIndex]);
        if (Inputs[0].RequiresGradient)
            ctx.Backend.LinearBackwardData(dy, ctx.Parameters[WeightIndex], Flat(InGrad(0, ctx), ctx), AccumulateInput[0]);
    }
}
