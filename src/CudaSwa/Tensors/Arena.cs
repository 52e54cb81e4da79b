namespace CudaSwa.Tensors;

/// <summary>
/// One allocation that holds every tensor of an <see cref="ArenaLayout"/> (all parameters of a
/// model, or all their gradients, or all BN running statistics). Views are cheap value types.
/// </summary>
public sealed class Arena : IDisposable
{
    public Arena(ArenaLayout layout, Backend backend)
    {
        Layout = layout;
        Backend = backend;
        Buffer = backend.Allocate(Math.Max(1, layout.Length));
        backend.Fill(All, 0f);
    }

    public ArenaLayout Layout { get; }
    public Backend Backend { get; }
    public DeviceBuffer Buffer { get; }

    /// <summary>The whole arena as one flat tensor (padding included), for fused passes.</summary>
    public Tensor All => new(Buffer, 0, new TensorShape(checked((int)Math.Max(1, Layout.Length))));

    public Tensor this[int index]
    {
        get
        {
            var e = Layout.Entries[index];
            return new Tensor(Buffer, e.Offset, e.Shape);
        }
    }

    public Tensor this[string name] => this[Layout.IndexOf(name)];

    /// <summary>Copies the whole arena to the host (padding included).</summary>
    public float[] ToHost() => Backend.ToArray(All);

    public void FromHost(ReadOnlySpan<float> values)
    {
        if (values.Length != All.Length)
            throw new ArgumentException($"Arena holds {All.Length} values; got {values.Length}.", nameof(values));
        Backend.Upload(values, All);
    }

    public void CopyFrom(Arena other)
    {
        if (!ReferenceEquals(other.Layout, Layout) && other.Layout.Length != Layout.Length)
            throw new ArgumentException("Arenas have different layouts.", nameof(other));
        Backend.Copy(other.All, All);
    }

    public void Dispose() => Buffer.Dispose();
}
