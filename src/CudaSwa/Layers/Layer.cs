namespace CudaSwa.Layers;

/// <summary>
/// Base of every layer. A layer knows its input nodes, its output node, the indices of its
/// parameters in the network's arenas, and which backend ops to call in which order.
///
/// Backward convention (as in llm.c): parameter gradients ACCUMULATE (cuDNN/cuBLAS beta = 1),
/// so the trainer zeroes the gradient arena once per step; activation gradients OVERWRITE
/// (beta = 0), except when another consumer of the same node already wrote its share in this
/// backward pass, in which case <see cref="AccumulateInput"/> says to add (the skip path of a
/// residual block). The network computes those flags once, at build time.
/// </summary>
public abstract class Layer
{
    protected Layer(string name, Node[] inputs)
    {
        Name = name;
        Inputs = inputs;
        AccumulateInput = new bool[inputs.Length];
    }

    /// <summary>PyTorch-style module name, e.g. "layer1.0.conv1" (empty for parameter-free layers).</summary>
    public string Name { get; }

    public IReadOnlyList<Node> Inputs { get; }

    public Node Output { get; internal set; } = null!;

    /// <summary>Per input: add into its gradient instead of overwriting it.</summary>
    internal bool[] AccumulateInput { get; }

    /// <summary>Kind of layer for summaries ("Conv2d", "BatchNorm2d", ...).</summary>
    public abstract string Kind { get; }

    /// <summary>Allocates nothing by default; convolutions prepare their algorithm/scratch here.</summary>
    protected internal virtual void Prepare(Network network, int batch) { }

    protected internal abstract void Forward(RunContext ctx);

    protected internal abstract void Backward(RunContext ctx);

    protected Tensors.Tensor In(int i, RunContext ctx) => Inputs[i].Value.WithBatch(ctx.Batch);
    protected Tensors.Tensor InGrad(int i, RunContext ctx) => Inputs[i].Gradient.WithBatch(ctx.Batch);
    protected Tensors.Tensor Out(RunContext ctx) => Output.Value.WithBatch(ctx.Batch);
    protected Tensors.Tensor OutGrad(RunContext ctx) => Output.Gradient.WithBatch(ctx.Batch);

    public override string ToString() => string.IsNullOrEmpty(Name) ? Kind : $"{Kind} {Name}";
}
