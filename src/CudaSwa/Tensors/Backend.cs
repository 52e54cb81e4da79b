namespace CudaSwa.Tensors;

/// <summary>
/// The seam between layers and hardware. Layers hold shapes, parameters and the order of calls;
/// a backend supplies the ops. Every public op validates its arguments (shapes, dtypes, owning
/// backend) and then calls the matching protected <c>...Core</c> method, so a backend only writes
/// the arithmetic. The CPU backend is the readable reference; the CUDA backend is the fast one.
///
/// Conventions shared by all ops:
/// - Tensors are contiguous NCHW float32 unless named otherwise (labels and indices are int32,
///   images uint8).
/// - Parameter gradients accumulate (dW += ...). Activation gradients overwrite unless the caller
///   passes accumulate = true, which the graph does when a second consumer adds into the same
///   gradient (the skip path of a residual block).
/// - Ops are asynchronous with respect to the host on devices that queue work; Download and
///   Synchronize wait.
/// </summary>
public abstract partial class Backend : IDisposable
{
    /// <summary>Short name, e.g. "cpu" or "cuda:0".</summary>
    public abstract string Name { get; }

    /// <summary>One line describing the hardware, for logs.</summary>
    public abstract string Description { get; }

    /// <summary>When set, every op is timed (with a device synchronisation around it) into this profiler.</summary>
    public OpProfiler? Profiler { get; set; }

    /// <summary>
    /// Releases what the backend holds (on CUDA: library handles, kernels and its hold on the device's
    /// primary context). Buffers it allocated are no longer usable afterwards: dispose networks and buffers first.
    /// </summary>
    public abstract void Dispose();

    /// <summary>Free and total bytes of the device's own memory; null where the device is the host (the CPU backend).</summary>
    public virtual (long Free, long Total)? DeviceMemory() => null;

    // ---------------------------------------------------------------- validation helpers

    /// <summary>Marks a tensor's buffer as written by this op (<see cref="DeviceBuffer.Version"/>), so caches derived from it (folded weights) know to refresh.</summary>
    private static void Wrote(Tensor t)
    {
        if (!t.IsNull) t.Buffer.MarkWritten(); // optional outputs (e.g. no loss gradient in evaluation) may be absent
    }

    private void Own(Tensor t, string name)
    {
        if (t.IsNull) throw new ArgumentNullException(name, $"Tensor '{name}' is missing.");
        if (!ReferenceEquals(t.Backend, this))
            throw new ArgumentException($"Tensor '{name}' lives on backend '{t.Backend.Name}', not on '{Name}'.", name);
        if (t.Buffer.IsDisposed)
            throw new ObjectDisposedException(name, $"Tensor '{name}' points into a freed buffer.");
    }

    private static void RequireFloat(Tensor t, string name)
    {
        if (t.DType != DType.Float32) throw new ArgumentException($"Tensor '{name}' must be float32; got {t.DType}.", name);
    }

    private static void RequireShape(Tensor t, TensorShape expected, string name)
    {
        if (t.Shape.Length != expected.Length || t.Shape.N != expected.N || t.Shape.SampleLength != expected.SampleLength)
            throw new ArgumentException($"Tensor '{name}' has shape {t.Shape}; expected {expected}.", name);
    }

    private static void RequireLength(Tensor t, long expected, string name, string what)
    {
        if (t.IsNull) throw new ArgumentNullException(name, $"Tensor '{name}' is missing.");
        if (t.Length != expected)
            throw new ArgumentException($"Tensor '{name}' has {t.Length} elements {t.Shape}; expected {expected} ({what}).", name);
    }
}
