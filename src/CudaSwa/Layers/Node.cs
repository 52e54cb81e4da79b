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

    public int Index { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }

    /// <summary>False only for the network input: no layer computes a gradient into it.</summary>
    public bool RequiresGradient { get; }

    public long SampleLength => (long)Channels * Height * Width;

    public TensorShape ShapeFor(int batch) => TensorShape.Nchw(batch, Channels, Height, Width);

    internal Tensor Value;
    internal Tensor Gradient;

    public override string ToString() => $"node {Index} ({Channels}, {Height}, {Width})";
}
