using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Layers;

/// <summary>
/// A network built for one backend and a maximum batch size. Allocate once, run many: the
/// parameter, gradient and BN-buffer arenas, every activation and activation gradient, and the
/// convolution scratch are allocated here; Forward/Backward allocate no device memory. Smaller
/// batches (an uneven last batch) run on prefixes of the same buffers.
///
/// The network can be re-bound to other parameter and buffer arenas of the same layout — the
/// SWA model is this same network bound to the averaged arena, sharing all activation memory
/// (the two never run at the same time).
/// </summary>
public sealed class Network : IDisposable
{
    private readonly List<Layer> _layers;
    private readonly List<Node> _nodes;
    private readonly DeviceBuffer _activations;
    private readonly DeviceBuffer? _activationGradients;
    private readonly DeviceBuffer _batchNormScratch;
    private readonly RunContext _context;
    private readonly Arena _ownParameters;
    private readonly Arena _ownBuffers;
    private readonly DeviceBuffer? _folded;
    private readonly List<Conv2d> _foldedConvolutions = [];
    private (Arena? Parameters, long ParameterVersion, Arena? Buffers, long BufferVersion) _foldedFrom;
    private int _lastTrainBatch = -1;

    internal Network(NetworkBuilder builder, Backend backend, int batchSize, ulong seed, bool fuse = true)
    {
        ModelName = builder.ModelName;
        Backend = backend;
        MaxBatch = batchSize;
        Seed = seed;
        ParameterLayout = builder.Parameters;
        BufferLayout = builder.Buffers;
        _layers = [.. builder.Layers];
        _nodes = [.. builder.Nodes];
        InputNode = builder.Input;
        OutputNode = _layers[^1].Output;
        BatchNormLayers = _layers.OfType<BatchNorm2d>().ToList();
        LastBatchNormLayer = BatchNormLayers.Count == 0 ? -1 : _layers.LastIndexOf(BatchNormLayers[^1]);

        _ownParameters = new Arena(ParameterLayout, backend);
        Gradients = new Arena(ParameterLayout, backend);
        _ownBuffers = new Arena(BufferLayout, backend);
        Parameters = _ownParameters;
        Buffers = _ownBuffers;

        // Activations and their gradients: one buffer each, aligned slots per node.
        long valueLength = 0, gradLength = 0;
        var valueOffset = new long[_nodes.Count];
        var gradOffset = new long[_nodes.Count];
        foreach (var node in _nodes)
        {
            long len = node.SampleLength * batchSize;
            valueOffset[node.Index] = valueLength;
            valueLength = Align(valueLength + len);
            if (node.RequiresGradient)
            {
                gradOffset[node.Index] = gradLength;
                gradLength = Align(gradLength + len);
            }
        }
        _activations = backend.Allocate(valueLength);
        _activationGradients = gradLength > 0 ? backend.Allocate(gradLength) : null;
        foreach (var node in _nodes)
        {
            node.Value = new Tensor(_activations, valueOffset[node.Index], node.ShapeFor(batchSize));
            if (node.RequiresGradient)
                node.Gradient = new Tensor(_activationGradients!, gradOffset[node.Index], node.ShapeFor(batchSize));
        }
        ActivationBytes = (valueLength + gradLength) * sizeof(float);

        long scratch = 0;
        foreach (var bn in BatchNormLayers) scratch = Align(scratch + 2L * bn.Channels);
        _batchNormScratch = backend.Allocate(Math.Max(1, scratch));
        long at = 0;
        foreach (var bn in BatchNormLayers)
        {
            bn.SavedMean = new Tensor(_batchNormScratch, at, new TensorShape(bn.Channels));
            bn.SavedInvStd = new Tensor(_batchNormScratch, at + bn.Channels, new TensorShape(bn.Channels));
            at = Align(at + 2L * bn.Channels);
        }

        // Backward convention: the first consumer of a node to run backward (the last in forward
        // order) overwrites its gradient, every later one adds.
        var written = new HashSet<Node>();
        for (int i = _layers.Count - 1; i >= 0; i--)
        {
            var layer = _layers[i];
            for (int k = 0; k < layer.Inputs.Count; k++)
            {
                var input = layer.Inputs[k];
                if (!input.RequiresGradient) continue;
                layer.AccumulateInput[k] = !written.Add(input);
            }
        }

        if (fuse) _folded = PlanFusions(backend);
        Fused = fuse;

        foreach (var layer in _layers) layer.Prepare(this, batchSize);
        _context = new RunContext(this);
        InitializeParameters(seed);
        ResetBuffers();
    }

    /// <summary>
    /// Pairs layers that run as one pass (same values as apart, fewer passes over memory):
    /// a batch norm or residual add whose only consumer is a ReLU computes the ReLU too, and in
    /// evaluation a convolution whose only consumer is a batch norm absorbs it
    /// (weights and bias folded once per change of the parameters or statistics, see
    /// <see cref="RefreshFoldedWeights"/>). Returns the buffer of the folded weights, or null.
    /// </summary>
    private DeviceBuffer? PlanFusions(Backend backend)
    {
        var consumers = new Dictionary<Node, List<Layer>>();
        foreach (var layer in _layers)
            foreach (var input in layer.Inputs)
                (consumers.TryGetValue(input, out var list) ? list : consumers[input] = []).Add(layer);
        Layer? OnlyConsumer(Node node) =>
            node != OutputNode && consumers.TryGetValue(node, out var list) && list.Count == 1 ? list[0] : null;

        foreach (var layer in _layers)
        {
            if (OnlyConsumer(layer.Output) is not Relu relu) continue;
            if (layer is BatchNorm2d bn && bn.Inputs[0].RequiresGradient)
            {
                bn.FusedRelu = relu;
                relu.Fused = true;
            }
            else if (layer is ResidualAdd add && add.Inputs.All(i => i.RequiresGradient))
            {
                add.FusedRelu = relu;
                relu.Fused = true;
            }
        }

        long length = 0;
        foreach (var conv in _layers.OfType<Conv2d>())
        {
            if (OnlyConsumer(conv.Output) is not BatchNorm2d bn) continue;
            conv.FoldedBatchNorm = bn;
            bn.FoldedIntoConvolution = true;
            _foldedConvolutions.Add(conv);
            length = Align(Align(length + ParameterLayout.Entries[conv.WeightIndex].Length) + conv.OutChannels);
        }
        if (_foldedConvolutions.Count == 0) return null;
        var folded = backend.Allocate(length);
        long at = 0;
        foreach (var conv in _foldedConvolutions)
        {
            var shape = ParameterLayout.Entries[conv.WeightIndex].Shape;
            conv.FoldedWeight = new Tensor(folded, at, shape);
            at = Align(at + shape.Length);
            conv.FoldedBias = new Tensor(folded, at, new TensorShape(conv.OutChannels));
            at = Align(at + conv.OutChannels);
        }
        return folded;
    }

    /// <summary>
    /// Folds every absorbed batch norm into its convolution again when the bound parameters or
    /// statistics were written since the last fold (or other arenas were bound): the buffers'
    /// write versions (<see cref="DeviceBuffer.Version"/>) say so, whoever wrote them.
    /// </summary>
    private void RefreshFoldedWeights()
    {
        if (_folded is null) return;
        var now = (Parameters, Parameters.Buffer.Version, Buffers, Buffers.Buffer.Version);
        if (ReferenceEquals(_foldedFrom.Parameters, now.Parameters) && _foldedFrom.ParameterVersion == now.Item2 &&
            ReferenceEquals(_foldedFrom.Buffers, now.Buffers) && _foldedFrom.BufferVersion == now.Item4)
            return;
        foreach (var conv in _foldedConvolutions)
        {
            var bn = conv.FoldedBatchNorm!;
            Backend.FoldBatchNorm(Parameters[conv.WeightIndex], conv.BiasIndex >= 0 ? Parameters[conv.BiasIndex] : default, Parameters[bn.ScaleIndex], Parameters[bn.ShiftIndex],
                Buffers[bn.RunningMeanIndex], Buffers[bn.RunningVarIndex], BatchNorm2d.Epsilon, conv.FoldedWeight, conv.FoldedBias);
        }
        FoldCount++;
        _foldedFrom = now;
    }

    /// <summary>Whether layers run fused (see <see cref="PlanFusions"/>); networks built for comparison may run every layer apart.</summary>
    internal bool Fused { get; }

    /// <summary>How often the folded weights were recomputed (tests check the cache).</summary>
    internal int FoldCount { get; private set; }

    private static long Align(long n) => (n + ArenaLayout.Alignment - 1) / ArenaLayout.Alignment * ArenaLayout.Alignment;

    /// <summary>The model's name, e.g. "resnet20".</summary>
    public string ModelName { get; }
    /// <summary>The backend every tensor of the network lives on.</summary>
    public Backend Backend { get; }
    /// <summary>The batch size the network was built for; passes run on 1 to MaxBatch samples, smaller batches on prefixes of the same buffers.</summary>
    public int MaxBatch { get; }

    /// <summary>Keys initialisation and dropout masks.</summary>
    public ulong Seed { get; }

    /// <summary>Layout of the parameter arenas (and of the gradient and momentum arenas).</summary>
    public ArenaLayout ParameterLayout { get; }
    /// <summary>Layout of the BN running-statistics arenas.</summary>
    public ArenaLayout BufferLayout { get; }

    /// <summary>The parameter arena currently bound (the network's own, or e.g. the SWA average).</summary>
    public Arena Parameters { get; private set; }

    /// <summary>Parameter gradients, one arena with the parameter layout: <see cref="Backward"/> adds into it, <see cref="ZeroGradients"/> clears it.</summary>
    public Arena Gradients { get; }

    /// <summary>The BN running-statistics arena currently bound.</summary>
    public Arena Buffers { get; private set; }

    /// <summary>The layers, in execution order.</summary>
    public IReadOnlyList<Layer> Layers => _layers;
    /// <summary>The activations, network input first, indexed by <see cref="Node.Index"/>.</summary>
    public IReadOnlyList<Node> Nodes => _nodes;
    /// <summary>The network input; a loader writes batches into <see cref="Input"/>.</summary>
    public Node InputNode { get; }
    /// <summary>The last layer's output: the logits.</summary>
    public Node OutputNode { get; }
    /// <summary>The batch-norm layers, in execution order.</summary>
    public IReadOnlyList<BatchNorm2d> BatchNormLayers { get; }

    /// <summary>Index in <see cref="Layers"/> of the last batch norm, where a BN recompute can stop; -1 if none.</summary>
    public int LastBatchNormLayer { get; }

    /// <summary>Number of trainable values (arena padding excluded).</summary>
    public long ParameterCount => ParameterLayout.ValueCount;
    /// <summary>Number of classes: the channels of the output.</summary>
    public int NumClasses => OutputNode.Channels;
    /// <summary>Bytes held by activations and activation gradients for <see cref="MaxBatch"/> samples.</summary>
    public long ActivationBytes { get; }

    /// <summary>
    /// The input tensor (N, C, H, W) for the first <paramref name="batch"/> samples; throws
    /// <see cref="ArgumentOutOfRangeException"/> when <paramref name="batch"/> is outside 1..<see cref="MaxBatch"/>.
    /// </summary>
    public Tensor Input(int batch) => InputNode.Value.WithBatch(CheckBatch(batch));
    /// <summary>The logits (batch, classes) of the last forward pass over <paramref name="batch"/> samples.</summary>
    public Tensor Logits(int batch) => OutputNode.Value.WithBatch(CheckBatch(batch)).Reshape(new TensorShape(batch, NumClasses));
    /// <summary>The gradient of the loss with respect to the logits (batch, classes): the loss writes it, <see cref="Backward"/> reads it.</summary>
    public Tensor LogitsGradient(int batch) => OutputNode.Gradient.WithBatch(CheckBatch(batch)).Reshape(new TensorShape(batch, NumClasses));

    private int CheckBatch(int batch)
    {
        if (batch < 1 || batch > MaxBatch)
            throw new ArgumentOutOfRangeException(nameof(batch), $"Batch size {batch} is outside 1..{MaxBatch}, the size network '{ModelName}' was built for.");
        return batch;
    }

    /// <summary>Runs the layers in order on the first <paramref name="batch"/> samples of <see cref="Input"/>.</summary>
    /// <param name="batch">Samples to run, 1 to <see cref="MaxBatch"/>; training with batch norm needs at least 2.</param>
    /// <param name="mode">Training, evaluation or BN recompute.</param>
    /// <param name="stopAfterLayer">Index of the last layer to run (-1: all). A BN recompute stops after the last BN.</param>
    /// <param name="batchNormFactor">Running-average factor for <see cref="RunMode.BatchNormRecompute"/>.</param>
    /// <param name="step">Keys dropout masks in training; pass the same value to <see cref="Backward"/>.</param>
    public void Forward(int batch, RunMode mode, int stopAfterLayer = -1, double batchNormFactor = 0, ulong step = 0)
    {
        CheckBatch(batch);
        if (mode == RunMode.Train && batch < 2 && BatchNormLayers.Count > 0)
            throw new ArgumentOutOfRangeException(nameof(batch), "Training with batch norm needs at least 2 samples per batch.");
        Run(batch, mode, stopAfterLayer, batchNormFactor, step, batchNormSync: null);
    }

    /// <summary>
    /// A training forward of this rank's <paramref name="shard"/> of a batch spread over ranks,
    /// every BN layer normalising with the whole batch's statistics through <paramref name="sync"/>
    /// (so a shard of one sample is fine); <see cref="Backward"/> then exchanges the BN gradient sums too.
    /// </summary>
    internal void ForwardShard(int shard, ulong step, IBatchNormSync sync)
    {
        CheckBatch(shard);
        Run(shard, RunMode.Train, -1, 0, step, sync);
    }

    private void Run(int batch, RunMode mode, int stopAfterLayer, double batchNormFactor, ulong step, IBatchNormSync? batchNormSync)
    {
        _context.BatchNormSync = batchNormSync;
        _context.Batch = batch;
        _context.Mode = mode;
        _context.BatchNormFactor = batchNormFactor;
        _context.Step = step;
        int last = stopAfterLayer < 0 ? _layers.Count - 1 : Math.Min(stopAfterLayer, _layers.Count - 1);
        if (mode == RunMode.Eval) RefreshFoldedWeights();
        for (int i = 0; i <= last; i++) _layers[i].Forward(_context);
        _lastTrainBatch = mode == RunMode.Train && last == _layers.Count - 1 ? batch : -1;
    }

    /// <summary>
    /// Back-propagates from <see cref="LogitsGradient"/> (written by the loss) through every layer,
    /// accumulating into <see cref="Gradients"/>. Needs the full training forward of the same batch just before.
    /// </summary>
    public void Backward(int batch)
    {
        if (_lastTrainBatch != batch)
            throw new InvalidOperationException($"Backward({batch}) needs a complete training-mode Forward({batch}) just before it.");
        _context.Batch = batch;
        for (int i = _layers.Count - 1; i >= 0; i--) _layers[i].Backward(_context);
    }

    /// <summary>Sets every parameter gradient to 0; needed once per step, since <see cref="Backward"/> accumulates.</summary>
    public void ZeroGradients() => Backend.Fill(Gradients.All, 0f);

    /// <summary>A fresh parameter arena with this network's layout (e.g. for the SWA average).</summary>
    public Arena CreateParameterArena() => new(ParameterLayout, Backend);

    /// <summary>A fresh BN-buffer arena with this network's layout, reset to mean 0 and variance 1.</summary>
    public Arena CreateBufferArena()
    {
        var arena = new Arena(BufferLayout, Backend);
        ResetBuffers(arena);
        return arena;
    }

    /// <summary>The network's own arenas (as built).</summary>
    public Arena OwnParameters => _ownParameters;
    /// <summary>The network's own BN running-statistics arena (as built).</summary>
    public Arena OwnBuffers => _ownBuffers;

    /// <summary>Binds other arenas; returns a scope that restores the previous binding when disposed.</summary>
    public BindingScope Bind(Arena parameters, Arena buffers)
    {
        if (parameters.Layout.Length != ParameterLayout.Length || buffers.Layout.Length != BufferLayout.Length)
            throw new ArgumentException($"Arenas do not match the layout of network '{ModelName}'.");
        if (!ReferenceEquals(parameters.Backend, Backend) || !ReferenceEquals(buffers.Backend, Backend))
            throw new ArgumentException("Arenas must live on the network's backend.");
        var scope = new BindingScope(this, Parameters, Buffers);
        Parameters = parameters;
        Buffers = buffers;
        _lastTrainBatch = -1;
        return scope;
    }

    /// <summary>Restores a network's previous arena binding when disposed; returned by <see cref="Network.Bind"/>.</summary>
    public readonly struct BindingScope : IDisposable
    {
        private readonly Network _network;
        private readonly Arena _parameters, _buffers;

        internal BindingScope(Network network, Arena parameters, Arena buffers)
        {
            _network = network;
            _parameters = parameters;
            _buffers = buffers;
        }

        /// <summary>Binds again the arenas that were bound before <see cref="Network.Bind"/>; does nothing for a default scope.</summary>
        public void Dispose()
        {
            if (_network is null) return;
            _network.Parameters = _parameters;
            _network.Buffers = _buffers;
            _network._lastTrainBatch = -1;
        }
    }

    /// <summary>
    /// Kaiming-normal convolution weights (fan-out, std = sqrt(2 / (k*k*out)), as torchvision's
    /// ResNet and the SWA reference code), PyTorch's default uniform(+-1/sqrt(fan_in)) for linear
    /// layers, zero conv biases, BN scale 1 and shift 0. Deterministic in the seed.
    /// </summary>
    public void InitializeParameters(ulong seed)
    {
        var host = new float[Parameters.All.Length];
        var entries = ParameterLayout.Entries;
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            var span = host.AsSpan((int)e.Offset, (int)e.Length);
            switch (e.Role)
            {
                case ArenaRole.ConvWeight:
                    Philox.FillNormal(span, Math.Sqrt(2.0 / (e.Shape.N * e.Shape.H * e.Shape.W)), seed, (ulong)i);
                    break;
                case ArenaRole.LinearWeight:
                    Philox.FillUniform(span, 1.0 / Math.Sqrt(e.Shape.C), seed, (ulong)i);
                    break;
                case ArenaRole.Bias when i > 0 && entries[i - 1].Role == ArenaRole.LinearWeight:
                    Philox.FillUniform(span, 1.0 / Math.Sqrt(entries[i - 1].Shape.C), seed, (ulong)i);
                    break;
                case ArenaRole.BatchNormScale:
                    span.Fill(1f);
                    break;
                default:
                    span.Clear();
                    break;
            }
        }
        Parameters.FromHost(host);
    }

    /// <summary>BN running statistics back to mean 0, variance 1 (PyTorch's reset_running_stats).</summary>
    public void ResetBuffers() => ResetBuffers(Buffers);

    private void ResetBuffers(Arena buffers)
    {
        var host = new float[buffers.All.Length];
        foreach (var e in BufferLayout.Entries)
            if (e.Role == ArenaRole.BatchNormRunningVar)
                host.AsSpan((int)e.Offset, (int)e.Length).Fill(1f);
        buffers.FromHost(host);
    }

    /// <summary>
    /// Frees the network's own arenas, its gradients, activations and scratch. Arenas made with
    /// <see cref="CreateParameterArena"/> or <see cref="CreateBufferArena"/> belong to the caller.
    /// </summary>
    public void Dispose()
    {
        _ownParameters.Dispose();
        Gradients.Dispose();
        _ownBuffers.Dispose();
        _activations.Dispose();
        _activationGradients?.Dispose();
        _batchNormScratch.Dispose();
        _folded?.Dispose();
    }
}
