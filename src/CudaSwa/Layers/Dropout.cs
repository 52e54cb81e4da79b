namespace CudaSwa.Layers;

/// <summary>
/// Inverted dropout. The mask is a pure function of (network seed, step, layer id, element), so
/// nothing is stored between forward and backward and every backend draws the same mask.
/// </summary>
public sealed class Dropout : Layer
{
    internal Dropout(Node input, float probability, int id) : base("", [input])
    {
        Probability = probability;
        Id = id;
    }

    /// <inheritdoc/>
    public override string Kind => "Dropout";
    /// <summary>Probability that an element is dropped, in [0, 1); with 0 the layer copies.</summary>
    public float Probability { get; }
    /// <summary>The layer's number among the network's dropout layers, from 0; part of the mask key.</summary>
    public int Id { get; }

    private ulong Stream(RunContext ctx) => (ctx.Step << 8) | (uint)Id;

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx)
    {
        if (ctx.Mode != RunMode.Train || Probability == 0)
            ctx.Backend.Copy(In(0, ctx), Out(ctx));
        else
            ctx.Backend.DropoutForward(In(0, ctx), Out(ctx), Probability, ctx.Network.Seed, Stream(ctx));
    }

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        if (!Inputs[0].RequiresGradient) return;
        if (Probability == 0)
            ctx.Backend.AccumulateGradient(OutGrad(ctx), InGrad(0, ctx), AccumulateInput[0]);
        else
            ctx.Backend.DropoutBackward(OutGrad(ctx), InGrad(0, ctx), Probability, ctx.Network.Seed, Stream(ctx), AccumulateInput[0]);
    }
}
