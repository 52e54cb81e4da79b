namespace CudaSwa.Tensors;

/// <summary>
/// A view into a <see cref="DeviceBuffer"/>: element offset plus shape, contiguous, row-major (NCHW).
/// A value type so that taking views inside a training step allocates nothing.
/// </summary>
public readonly struct Tensor
{
    public Tensor(DeviceBuffer buffer, long offset, TensorShape shape)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (offset < 0 || offset + shape.Length > buffer.Length)
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"View [{offset}, {offset + shape.Length}) does not fit in a buffer of {buffer.Length} elements.");
        Buffer = buffer;
        Offset = offset;
        Shape = shape;
    }

    public DeviceBuffer Buffer { get; }
    public long Offset { get; }
    public TensorShape Shape { get; }
    public long Length => Shape.Length;
    public DType DType => Buffer.DType;
    public Backend Backend => Buffer.Backend;
    public bool IsNull => Buffer is null;

    /// <summary>The first <paramref name="n"/> samples (a prefix along the batch axis).</summary>
    public Tensor WithBatch(int n)
    {
        if (n < 0 || n > Shape.N)
            throw new ArgumentOutOfRangeException(nameof(n), $"Batch {n} is outside 0..{Shape.N} for a tensor of shape {Shape}.");
        return new Tensor(Buffer, Offset, Shape.WithBatch(n));
    }

    /// <summary>The same elements seen with another shape of equal length.</summary>
    public Tensor Reshape(TensorShape shape)
    {
        if (shape.Length != Length)
            throw new ArgumentException($"Cannot view {Shape} ({Length} elements) as {shape} ({shape.Length} elements).", nameof(shape));
        return new Tensor(Buffer, Offset, shape);
    }

    /// <summary>A flat run of elements inside this view.</summary>
    public Tensor Slice(long start, int length)
    {
        if (start < 0 || length < 0 || start + length > Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice [{start}, {start + length}) is outside a view of {Length} elements.");
        return new Tensor(Buffer, Offset + start, new TensorShape(length));
    }

    public override string ToString() => $"Tensor{Shape} {DType} @{Offset} on {Buffer?.Backend.Name}";
}
