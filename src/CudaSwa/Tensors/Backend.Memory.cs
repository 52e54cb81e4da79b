using System.Runtime.CompilerServices;

namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- memory

    /// <summary>
    /// Whether this backend's buffers are ordinary host memory the CPU can read and write in place
    /// (<see cref="HostSpan"/>); false for device memory, which is reached by copies.
    /// </summary>
    public abstract bool MemoryIsHostVisible { get; }

    /// <summary>A tensor's values as host memory, for backends whose memory is host-visible; throws otherwise.</summary>
    public Span<float> HostSpan(Tensor t)
    {
        Own(t, nameof(t));
        RequireFloat(t, nameof(t));
        if (!MemoryIsHostVisible) throw new NotSupportedException($"Backend '{Name}' keeps its tensors in device memory; use Download/Upload.");
        Wrote(t); // the caller may write through the span
        return HostSpanCore(t);
    }

    /// <summary>The host memory behind a float tensor (only called when <see cref="MemoryIsHostVisible"/>).</summary>
    private protected virtual Span<float> HostSpanCore(Tensor t) => throw new NotSupportedException();

    /// <summary>
    /// Allocates a buffer of <paramref name="length"/> elements of <paramref name="dtype"/> on this backend.
    /// The caller owns it and disposes it. Its contents are not initialised on every backend: write it before reading.
    /// </summary>
    public DeviceBuffer Allocate(long length, DType dtype = DType.Float32)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), $"Buffer length must be >= 0; got {length}.");
        return AllocateCore(length, dtype);
    }

    /// <summary>
    /// Allocates a buffer that fits <paramref name="shape"/> and returns a view of all of it. The caller owns
    /// the buffer (<see cref="Tensor.Buffer"/>) and disposes it.
    /// </summary>
    public Tensor AllocateTensor(TensorShape shape, DType dtype = DType.Float32) => new(Allocate(shape.Length, dtype), 0, shape);

    /// <summary>
    /// Copies host values into a tensor of this backend. <typeparamref name="T"/> must have the tensor's
    /// element size and <paramref name="source"/> exactly as many elements as <paramref name="destination"/>.
    /// </summary>
    public void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        Own(destination, nameof(destination));
        RequireElement<T>(destination, nameof(destination));
        if (source.Length != destination.Length)
            throw new ArgumentException($"Upload of {source.Length} elements into a view of {destination.Length} elements {destination.Shape}.", nameof(source));
        Wrote(destination);
        // In runs of at most 1 GiB: a byte span of a whole tensor past 2 GiB would overflow its length.
        int chunk = TransferChunkBytes / Unsafe.SizeOf<T>();
        if (source.Length <= chunk) UploadCore(System.Runtime.InteropServices.MemoryMarshal.AsBytes(source), destination);
        else
            for (int at = 0; at < source.Length; at += chunk)
            {
                int n = Math.Min(chunk, source.Length - at);
                UploadCore(System.Runtime.InteropServices.MemoryMarshal.AsBytes(source.Slice(at, n)), destination.Slice(at, n));
            }
    }

    /// <summary>The largest single host/device copy (1 GiB): larger transfers go in runs of this size.</summary>
    internal const int TransferChunkBytes = 1 << 30;

    /// <summary>
    /// Copies a tensor's values into host memory, after the queued work that writes them.
    /// <paramref name="destination"/> must hold exactly as many elements as <paramref name="source"/>, of its element size.
    /// </summary>
    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        Own(source, nameof(source));
        RequireElement<T>(source, nameof(source));
        if (destination.Length != source.Length)
            throw new ArgumentException($"Download of a view of {source.Length} elements {source.Shape} into a span of {destination.Length}.", nameof(destination));
        int chunk = TransferChunkBytes / Unsafe.SizeOf<T>();
        if (destination.Length <= chunk) DownloadCore(source, System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination));
        else
            for (int at = 0; at < destination.Length; at += chunk)
            {
                int n = Math.Min(chunk, destination.Length - at);
                DownloadCore(source.Slice(at, n), System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination.Slice(at, n)));
            }
    }

    /// <summary>Downloads a float32 tensor into a new array (waits for queued work).</summary>
    public float[] ToArray(Tensor source)
    {
        var result = new float[source.Length];
        Download<float>(source, result);
        return result;
    }

    /// <summary>Sets every element of a float32 tensor to <paramref name="value"/>.</summary>
    public void Fill(Tensor t, float value)
    {
        Own(t, nameof(t));
        RequireFloat(t, nameof(t));
        Wrote(t);
        using (new OpTimer(this, "Fill")) FillCore(t, value);
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/> element for element; both need the same dtype and length (shapes may differ).</summary>
    public void Copy(Tensor source, Tensor destination)
    {
        Own(source, nameof(source));
        Own(destination, nameof(destination));
        if (source.DType != destination.DType || source.Length != destination.Length)
            throw new ArgumentException($"Copy needs equal length and type; got {source.Length} {source.DType} -> {destination.Length} {destination.DType}.");
        Wrote(destination);
        using (new OpTimer(this, "Copy")) CopyCore(source, destination);
    }

    /// <summary>Waits until all queued work has finished (a no-op on the CPU).</summary>
    public virtual void Synchronize() { }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="Allocate"/>; the arguments are already validated.</summary>
    private protected abstract DeviceBuffer AllocateCore(long length, DType dtype);
    /// <summary>The backend's implementation of <see cref="Upload{T}"/>; the arguments are already validated.</summary>
    private protected abstract void UploadCore(ReadOnlySpan<byte> source, Tensor destination);
    /// <summary>The backend's implementation of <see cref="Download{T}"/>; the arguments are already validated.</summary>
    private protected abstract void DownloadCore(Tensor source, Span<byte> destination);
    /// <summary>The backend's implementation of <see cref="Fill"/>; the arguments are already validated.</summary>
    private protected abstract void FillCore(Tensor t, float value);
    /// <summary>The backend's implementation of <see cref="Copy"/>; the arguments are already validated.</summary>
    private protected abstract void CopyCore(Tensor source, Tensor destination);

    // ---------------------------------------------------------------- validation helpers

    private static void RequireElement<T>(Tensor t, string name) where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() != t.DType.SizeInBytes())
            throw new ArgumentException($"Element type {typeof(T).Name} does not match tensor '{name}' of {t.DType}.", name);
    }
}
