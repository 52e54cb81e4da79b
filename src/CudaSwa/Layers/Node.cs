using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>
/// An activation in the graph: the output of one layer (or the network input), with its
/// per-sample shape. Its value and gradient tensors are allocated once, for the network's batch.
/// </summary>
public sealed class Node
{
    internal Node(int index, int channels, int height, int width, bool requiresGradient)
    {
        Index = index;
        Channels = channels;
        Height = height;
        Width = width;
        RequiresGradient = requiresGradient;
    }

    /// <summary>Position of the node in <see cref="Network.Nodes"/>; the network input is 0.</summary>
    public int Index { get; }
    /// <summary>Channels per sample (features, for a vector).</summary>
    public int Channels { get; }
    /// <summary>Height per sample, in pixels (1 for a vector).</summary>
    public int Height { get; }
    /// <summary>Width per sample, in pixels (1 for a vector).</summary>
    public int Width { get; }

    /// <summary>False only for the network input: no layer computes a gradient into it.</summary>
    public bool RequiresGradient { get; }

    /// <summary>Values per sample: Channels x Height x Width.</summary>
    public long SampleLength => (long)Channels * Height * Width;

    /// <summary>The node's NCHW shape for a batch of <paramref name="batch"/> samples.</summary>
    public TensorShape ShapeFor(int batch) => TensorShape.Nchw(batch, Channels, Height, Width);

    internal Tensor Value;
    internal Tensor Gradient;

    /// <inheritdoc/>
    public override string ToString() => $"node {Index} ({Channels}, {Height}, {Width})";
}
