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
    /// <summary>A layer named <paramref name="name"/> (empty for parameter-free layers) that reads <paramref name="inputs"/>.</summary>
    protected Layer(string name, Node[] inputs)
    {
        Name = name;
        Inputs = inputs;
        AccumulateInput = new bool[inputs.Length];
    }

    /// <summary>PyTorch-style module name, e.g. "layer1.0.conv1" (empty for parameter-free layers).</summary>
    public string Name { get; }

    /// <summary>The nodes the layer reads, in order.</summary>
    public IReadOnlyList<Node> Inputs { get; }

    /// <summary>The node the layer writes; set when the layer is added to a <see cref="NetworkBuilder"/>.</summary>
    public Node Output { get; internal set; } = null!;

    /// <summary>Per input: add into its gradient instead of overwriting it.</summary>
    internal bool[] AccumulateInput { get; }

    /// <summary>Kind of layer for summaries ("Conv2d", "BatchNorm2d", ...).</summary>
    public abstract string Kind { get; }

    /// <summary>Allocates nothing by default; convolutions prepare their algorithm/scratch here.</summary>
    protected internal virtual void Prepare(Network network, int batch) { }

    /// <summary>
    /// Computes the output from the inputs for the first <c>ctx.Batch</c> samples in <c>ctx.Mode</c>, with the
    /// arenas bound in <paramref name="ctx"/>.
    /// </summary>
    protected internal abstract void Forward(RunContext ctx);

    /// <summary>
    /// Back-propagates the output gradient: adds into the parameter gradients, and writes the input
    /// gradients (or adds into them, per <see cref="AccumulateInput"/>). Runs after a training-mode <see cref="Forward"/>.
    /// </summary>
    protected internal abstract void Backward(RunContext ctx);

    /// <summary>Value of input <paramref name="i"/> for the current batch (a prefix of the node's tensor).</summary>
    protected Tensors.Tensor In(int i, RunContext ctx) => Inputs[i].Value.WithBatch(ctx.Batch);
    /// <summary>Gradient of input <paramref name="i"/> for the current batch.</summary>
    protected Tensors.Tensor InGrad(int i, RunContext ctx) => Inputs[i].Gradient.WithBatch(ctx.Batch);
    /// <summary>Value of the output for the current batch.</summary>
    protected Tensors.Tensor Out(RunContext ctx) => Output.Value.WithBatch(ctx.Batch);
    /// <summary>Gradient of the output for the current batch.</summary>
    protected Tensors.Tensor OutGrad(RunContext ctx) => Output.Gradient.WithBatch(ctx.Batch);

    /// <inheritdoc/>
    public override string ToString() => string.IsNullOrEmpty(Name) ? Kind : $"{Kind} {Name}";
}
