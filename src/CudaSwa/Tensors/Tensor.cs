namespace CudaSwa.Tensors;

/// <summary>
/// A view into a <see cref="DeviceBuffer"/>: element offset plus shape, contiguous, row-major (NCHW).
/// A value type so that taking views inside a training step allocates nothing.
/// </summary>
public readonly struct Tensor
{
    /// <summary>
    /// A view of <paramref name="shape"/> from element <paramref name="offset"/> of <paramref name="buffer"/>;
    /// throws <see cref="ArgumentOutOfRangeException"/> when it does not fit in the buffer. The view does not own the buffer.
    /// </summary>
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

    /// <summary>The buffer the view points into; the view does not own it.</summary>
    public DeviceBuffer Buffer { get; }
    /// <summary>Position of the first element, in elements from the start of the buffer.</summary>
    public long Offset { get; }
    /// <summary>Shape of the view.</summary>
    public TensorShape Shape { get; }
    /// <summary>Number of elements.</summary>
    public long Length => Shape.Length;
    /// <summary>Element type (the buffer's).</summary>
    public DType DType => Buffer.DType;
    /// <summary>The backend that allocated the buffer.</summary>
    public Backend Backend => Buffer.Backend;
    /// <summary>True for <c>default(Tensor)</c>, which ops read as "no tensor" (e.g. no logits gradient wanted).</summary>
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

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{Shape} {DType} @{Offset} on {Buffer?.Backend.Name}";
}
