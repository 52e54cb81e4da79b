namespace CudaSwa.Tensors;

/// <summary>
/// One allocation that holds every tensor of an <see cref="ArenaLayout"/> (all parameters of a
/// model, or all their gradients, or all BN running statistics). Views are cheap value types.
/// </summary>
public sealed class Arena : IDisposable
{
    /// <summary>Allocates one zero-filled buffer for every entry of <paramref name="layout"/> on <paramref name="backend"/>; the arena owns it.</summary>
    public Arena(ArenaLayout layout, Backend backend)
    {
        Layout = layout;
        Backend = backend;
        Buffer = backend.Allocate(Math.Max(1, layout.Length));
        backend.Fill(All, 0f);
    }

    /// <summary>The table of entries: names, aligned offsets, shapes and roles.</summary>
    public ArenaLayout Layout { get; }
    /// <summary>The backend the arena's buffer lives on.</summary>
    public Backend Backend { get; }
    /// <summary>The single allocation behind every entry, owned by the arena.</summary>
    public DeviceBuffer Buffer { get; }

    /// <summary>The whole arena as one flat tensor (padding included), for fused passes.</summary>
    public Tensor All => new(Buffer, 0, new TensorShape(checked((int)Math.Max(1, Layout.Length))));

    /// <summary>A view of entry <paramref name="index"/> of <see cref="Layout"/> (no copy).</summary>
    public Tensor this[int index]
    {
        get
        {
            var e = Layout.Entries[index];
            return new Tensor(Buffer, e.Offset, e.Shape);
        }
    }

    /// <summary>A view of the entry with PyTorch state_dict name <paramref name="name"/>; throws <see cref="KeyNotFoundException"/> when there is none.</summary>
    public Tensor this[string name] => this[Layout.IndexOf(name)];

    /// <summary>Copies the whole arena to the host (padding included).</summary>
    public float[] ToHost() => Backend.ToArray(All);

    /// <summary>Uploads the whole arena (padding included) from host values laid out as <see cref="ToHost"/> returns them: exactly as many as <see cref="All"/> holds.</summary>
    public void FromHost(ReadOnlySpan<float> values)
    {
        if (values.Length != All.Length)
            throw new ArgumentException($"Arena holds {All.Length} values; got {values.Length}.", nameof(values));
        Backend.Upload(values, All);
    }

    /// <summary>Frees the arena's buffer; views taken from it become invalid.</summary>
    public void Dispose() => Buffer.Dispose();
}
