namespace CudaSwa.Tensors;

/// <summary>
/// One allocation on a backend (host memory for the CPU backend, device memory for CUDA).
/// Tensors are views into buffers; a buffer is freed once, by its owner.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    protected DeviceBuffer(Backend backend, long length, DType dtype)
    {
        Backend = backend;
        Length = length;
        DType = dtype;
    }

    public Backend Backend { get; }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    public DType DType { get; }

    public long SizeInBytes => Length * DType.SizeInBytes();

    public bool IsDisposed { get; private set; }

    /// <summary>A view of the whole buffer with the given shape.</summary>
    public Tensor AsTensor(TensorShape shape) => new(this, 0, shape);

    public Tensor AsTensor() => new(this, 0, new TensorShape(checked((int)Length)));

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Free();
        GC.SuppressFinalize(this);
    }

    protected abstract void Free();

    ~DeviceBuffer()
    {
        if (!IsDisposed)
        {
            IsDisposed = true;
            Free();
        }
    }
}
