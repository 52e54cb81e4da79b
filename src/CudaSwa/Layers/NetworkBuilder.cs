using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>
/// Describes a network as a graph of layers in execution order, registering each parameter in
/// the parameter layout (and BN running statistics in the buffer layout) under its PyTorch
/// state_dict name. <see cref="Build(Backend, int, ulong)"/> then allocates everything for one batch size.
/// </summary>
public sealed class NetworkBuilder
{
    private readonly List<Layer> _layers = [];
    private readonly List<Node> _nodes = [];
    private int _dropouts;
    private bool _built;

    /// <summary>Starts a model named <paramref name="modelName"/> whose input has the given channels, height and width (CIFAR's 3x32x32 by default).</summary>
    public NetworkBuilder(string modelName, int channels = 3, int height = 32, int width = 32)
    {
        ModelName = modelName;
        Input = NewNode(channels, height, width, requiresGradient: false);
    }

    /// <summary>The model's name, passed on to the network.</summary>
    public string ModelName { get; }
    /// <summary>The input node, which the first layer reads.</summary>
    public Node Input { get; }
    /// <summary>Layout of the parameters registered so far.</summary>
    public ArenaLayout Parameters { get; } = new();
    /// <summary>Layout of the BN running statistics registered so far.</summary>
    public ArenaLayout Buffers { get; } = new();
    internal IReadOnlyList<Layer> Layers => _layers;
    internal IReadOnlyList<Node> Nodes => _nodes;

    private Node NewNode(int c, int h, int w, bool requiresGradient = true)
    {
        var node = new Node(_nodes.Count, c, h, w, requiresGradient);
        _nodes.Add(node);
        return node;
    }

    private Node Add(Layer layer, int c, int h, int w)
    {
        foreach (var input in layer.Inputs)
            if (!_nodes.Contains(input))
                throw new ArgumentException($"Layer {layer} takes a node that belongs to another builder.");
        layer.Output = NewNode(c, h, w);
        _layers.Add(layer);
        return layer.Output;
    }

    private static string Join(string prefix, string leaf) => string.IsNullOrEmpty(prefix) ? leaf : prefix + "." + leaf;

    /// <summary>
    /// Adds a <paramref name="kernel"/> x <paramref name="kernel"/> convolution with <paramref name="outChannels"/>
    /// filters (parameter "name.weight", plus "name.bias" when <paramref name="bias"/>) and returns its output
    /// node; throws <see cref="ArgumentException"/> when the kernel does not fit the input.
    /// </summary>
    public Node Conv(Node x, string name, int outChannels, int kernel, int stride = 1, int padding = 0, bool bias = false)
    {
        var spec = new ConvSpec(stride, padding);
        int p = spec.OutputSize(x.Height, kernel), q = spec.OutputSize(x.Width, kernel);
        if (p < 1 || q < 1) throw new ArgumentException($"Conv {name}: kernel {kernel} stride {stride} pad {padding} does not fit input {x}.");
        int w = Parameters.Add(Join(name, "weight"), TensorShape.Nchw(outChannels, x.Channels, kernel, kernel), ArenaRole.ConvWeight);
        int b = bias ? Parameters.Add(Join(name, "bias"), new TensorShape(outChannels), ArenaRole.Bias) : -1;
        return Add(new Conv2d(name, x, outChannels, kernel, stride, padding, w, b), outChannels, p, q);
    }

    /// <summary>
    /// Adds batch norm over the channels of <paramref name="x"/> (parameters "name.weight" and "name.bias",
    /// buffers "name.running_mean" and "name.running_var") and returns its output node.
    /// </summary>
    public Node BatchNorm(Node x, string name)
    {
        var shape = new TensorShape(x.Channels);
        int scale = Parameters.Add(Join(name, "weight"), shape, ArenaRole.BatchNormScale);
        int shift = Parameters.Add(Join(name, "bias"), shape, ArenaRole.BatchNormShift);
        int mean = Buffers.Add(Join(name, "running_mean"), shape, ArenaRole.BatchNormRunningMean);
        int var = Buffers.Add(Join(name, "running_var"), shape, ArenaRole.BatchNormRunningVar);
        return Add(new BatchNorm2d(name, x, scale, shift, mean, var), x.Channels, x.Height, x.Width);
    }

    /// <summary>Adds a ReLU and returns its output node.</summary>
    public Node Relu(Node x) => Add(new Relu(x), x.Channels, x.Height, x.Width);

    /// <summary>Adds the residual join a + b of two nodes of equal shape and returns its output node.</summary>
    public Node Add(Node a, Node b)
    {
        if (a.Channels != b.Channels || a.Height != b.Height || a.Width != b.Width)
            throw new ArgumentException($"Residual add needs equal shapes; got {a} and {b}.");
        return Add(new ResidualAdd(a, b), a.Channels, a.Height, a.Width);
    }

    /// <summary>Adds global average pooling, (C, H, W) to (C, 1, 1), and returns its output node.</summary>
    public Node GlobalAvgPool(Node x) => Add(new GlobalAvgPool(x), x.Channels, 1, 1);

    /// <summary>Adds 2x2 max pooling with stride 2 and returns its output node (half the height and width).</summary>
    public Node MaxPool(Node x)
    {
        if (x.Height < 2 || x.Width < 2) throw new ArgumentException($"2x2 max pooling needs at least 2x2 input; got {x}.");
        return Add(new MaxPool2d(x), x.Channels, x.Height / 2, x.Width / 2);
    }

    /// <summary>Adds inverted dropout with drop probability <paramref name="probability"/> in [0, 1) and returns its output node.</summary>
    public Node Dropout(Node x, float probability)
    {
        if (!(probability >= 0 && probability < 1)) throw new ArgumentOutOfRangeException(nameof(probability), $"Dropout probability must be in [0, 1); got {probability}.");
        return Add(new Dropout(x, probability, _dropouts++), x.Channels, x.Height, x.Width);
    }

    /// <summary>Adds a fully connected layer to <paramref name="outFeatures"/> outputs over the flattened input (parameters "name.weight" and "name.bias") and returns its output node.</summary>
    public Node Linear(Node x, string name, int outFeatures)
    {
        int inFeatures = (int)x.SampleLength;
        int w = Parameters.Add(Join(name, "weight"), new TensorShape(outFeatures, inFeatures), ArenaRole.LinearWeight);
        int b = Parameters.Add(Join(name, "bias"), new TensorShape(outFeatures), ArenaRole.Bias);
        return Add(new Linear(name, x, outFeatures, w, b), outFeatures, 1, 1);
    }

    /// <summary>Allocates parameters, gradients, BN buffers, activations and scratch for batches of up to <paramref name="batchSize"/>.</summary>
    public Network Build(Backend backend, int batchSize, ulong seed = 0) => Build(backend, batchSize, seed, fuse: true);

    /// <summary>Builds with layer fusion on or off (off: every layer runs its own ops, the reference for fusion tests).</summary>
    internal Network Build(Backend backend, int batchSize, ulong seed, bool fuse)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"Batch size must be >= 1; got {batchSize}.");
        if (_layers.Count == 0) throw new InvalidOperationException($"Model '{ModelName}' has no layers.");
        if (_built) throw new InvalidOperationException("A NetworkBuilder builds one network; describe the model again for another.");
        _built = true;
        return new Network(this, backend, batchSize, seed, fuse);
    }
}
