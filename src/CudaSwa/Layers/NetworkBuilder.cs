using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>
/// Describes a network as a graph of layers in execution order, registering each parameter in
/// the parameter layout (and BN running statistics in the buffer layout) under its PyTorch
/// state_dict name. <see cref="Build"/> then allocates everything for one batch size.
/// </summary>
public sealed class NetworkBuilder
{
    private readonly List<Layer> _layers = [];
    private readonly List<Node> _nodes = [];
    private int _dropouts;
    private bool _built;

    public NetworkBuilder(string modelName, int channels = 3, int height = 32, int width = 32)
    {
        ModelName = modelName;
        Input = NewNode(channels, height, width, requiresGradient: false);
    }

    public string ModelName { get; }
    public Node Input { get; }
    public ArenaLayout Parameters { get; } = new();
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

    public Node Conv(Node x, string name, int outChannels, int kernel, int stride = 1, int padding = 0, bool bias = false)
    {
        var spec = new ConvSpec(stride, padding);
        int p = spec.OutputSize(x.Height, kernel), q = spec.OutputSize(x.Width, kernel);
        if (p < 1 || q < 1) throw new ArgumentException($"Conv {name}: kernel {kernel} stride {stride} pad {padding} does not fit input {x}.");
        int w = Parameters.Add(Join(name, "weight"), TensorShape.Nchw(outChannels, x.Channels, kernel, kernel), ArenaRole.ConvWeight);
        int b = bias ? Parameters.Add(Join(name, "bias"), new TensorShape(outChannels), ArenaRole.Bias) : -1;
        return Add(new Conv2d(name, x, outChannels, kernel, stride, padding, w, b), outChannels, p, q);
    }

    public Node BatchNorm(Node x, string name)
    {
        var shape = new TensorShape(x.Channels);
        int scale = Parameters.Add(Join(name, "weight"), shape, ArenaRole.BatchNormScale);
        int shift = Parameters.Add(Join(name, "bias"), shape, ArenaRole.BatchNormShift);
        int mean = Buffers.Add(Join(name, "running_mean"), shape, ArenaRole.BatchNormRunningMean);
        int var = Buffers.Add(Join(name, "running_var"), shape, ArenaRole.BatchNormRunningVar);
        return Add(new BatchNorm2d(name, x, scale, shift, mean, var), x.Channels, x.Height, x.Width);
    }

    public Node Relu(Node x) => Add(new Relu(x), x.Channels, x.Height, x.Width);

    public Node Add(Node a, Node b)
    {
        if (a.Channels != b.Channels || a.Height != b.Height || a.Width != b.Width)
            throw new ArgumentException($"Residual add needs equal shapes; got {a} and {b}.");
        return Add(new ResidualAdd(a, b), a.Channels, a.Height, a.Width);
    }

    public Node GlobalAvgPool(Node x) => Add(new GlobalAvgPool(x), x.Channels, 1, 1);

    public Node MaxPool(Node x)
    {
        if (x.Height < 2 || x.Width < 2) throw new ArgumentException($"2x2 max pooling needs at least 2x2 input; got {x}.");
        return Add(new MaxPool2d(x), x.Channels, x.Height / 2, x.Width / 2);
    }

    public Node Dropout(Node x, float probability)
    {
        if (!(probability >= 0 && probability < 1)) throw new ArgumentOutOfRangeException(nameof(probability), $"Dropout probability must be in [0, 1); got {probability}.");
        return Add(new Dropout(x, probability, _dropouts++), x.Channels, x.Height, x.Width);
    }

    public Node Linear(Node x, string name, int outFeatures)
    {
        int inFeatures = (int)x.SampleLength;
        int w = Parameters.Add(Join(name, "weight"), new TensorShape(outFeatures, inFeatures), ArenaRole.LinearWeight);
        int b = Parameters.Add(Join(name, "bias"), new TensorShape(outFeatures), ArenaRole.Bias);
        return Add(new Linear(name, x, outFeatures, w, b), outFeatures, 1, 1);
    }

    /// <summary>Allocates parameters, gradients, BN buffers, activations and scratch for batches of up to <paramref name="batchSize"/>.</summary>
    public Network Build(Backend backend, int batchSize, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"Batch size must be >= 1; got {batchSize}.");
        if (_layers.Count == 0) throw new InvalidOperationException($"Model '{ModelName}' has no layers.");
        if (_built) throw new InvalidOperationException("A NetworkBuilder builds one network; describe the model again for another.");
        _built = true;
        return new Network(this, backend, batchSize, seed);
    }
}
