namespace CudaSwa.Tensors;

/// <summary>
/// One allocation on a backend (host memory for the CPU backend, device memory for CUDA).
/// Tensors are views into buffers; a buffer is freed once, by its owner.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    /// <summary>Records the buffer's backend, element count and element type; the derived class makes the allocation.</summary>
    protected DeviceBuffer(Backend backend, long length, DType dtype)
    {
        Backend = backend;
        Length = length;
        DType = dtype;
    }

    /// <summary>The backend that allocated the buffer; only its ops accept views of it.</summary>
    public Backend Backend { get; }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Size in bytes: <see cref="Length"/> times the element size.</summary>
    public long SizeInBytes => Length * DType.SizeInBytes();

    /// <summary>
    /// Counts the backend ops (and uploads, and host spans handed out) that wrote into this
    /// buffer: a value derived from the buffer is current while the version is unchanged.
    /// </summary>
    internal long Version { get; private set; }

    internal void MarkWritten() => Version++;

    /// <summary>Whether the buffer has been freed; ops refuse views into a freed buffer.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>A view of the whole buffer with the given shape.</summary>
    public Tensor AsTensor(TensorShape shape) => new(this, 0, shape);

    /// <summary>A rank-1 view of the whole buffer.</summary>
    public Tensor AsTensor() => new(this, 0, new TensorShape(checked((int)Length)));

    /// <summary>Frees the allocation (later calls do nothing); views into the buffer become invalid.</summary>
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Free();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the allocation; called once, from <see cref="Dispose"/> or the finalizer.</summary>
    protected abstract void Free();

    /// <summary>Frees the allocation of a buffer that was never disposed.</summary>
    ~DeviceBuffer()
    {
        if (!IsDisposed)
        {
            IsDisposed = true;
            Free();
        }
    }
}
