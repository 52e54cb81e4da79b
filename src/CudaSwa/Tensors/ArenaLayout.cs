namespace CudaSwa.Tensors;

/// <summary>What a slot of an arena holds; decides initialisation, checkpoint names and what averaging touches.</summary>
public enum ArenaRole
{
    /// <summary>A convolution weight (K, C, R, S); Kaiming-normal initialisation.</summary>
    ConvWeight,
    /// <summary>A linear-layer weight (Out, In); uniform initialisation.</summary>
    LinearWeight,
    /// <summary>A convolution or linear bias, one value per output channel or feature.</summary>
    Bias,
    /// <summary>A batch-norm scale (gamma, "weight"), initialised to 1.</summary>
    BatchNormScale,
    /// <summary>A batch-norm shift (beta, "bias"), initialised to 0.</summary>
    BatchNormShift,
    /// <summary>A batch-norm running mean (a buffer, not a trained parameter), reset to 0.</summary>
    BatchNormRunningMean,
    /// <summary>A batch-norm running variance (a buffer, not a trained parameter), reset to 1.</summary>
    BatchNormRunningVar,
}

/// <summary>One named view of an arena: PyTorch state_dict name, element offset, shape.</summary>
/// <param name="Name">The PyTorch state_dict name (e.g. layer1.0.conv1.weight).</param>
/// <param name="Offset">Offset of the first element in the arena, in elements (aligned).</param>
/// <param name="Shape">The tensor's shape.</param>
/// <param name="Role">What the values are (conv weight, BN scale, running mean, ...).</param>
public sealed record ArenaEntry(string Name, long Offset, TensorShape Shape, ArenaRole Role)
{
    /// <summary>Number of values in the entry (its shape's length, without padding).</summary>
    public long Length => Shape.Length;
}

/// <summary>
/// The table of a flat arena (llm.c's malloc_and_point_parameters): every tensor of one kind in a
/// model gets an aligned offset inside one allocation, so zeroing gradients, the SGD step, the SWA
/// update and checkpointing are each one pass over one buffer.
/// </summary>
public sealed class ArenaLayout
{
    /// <summary>Offsets are multiples of 64 floats (256 bytes): aligned for AVX-512 and for vectorised CUDA loads.</summary>
    public const int Alignment = 64;

    private readonly List<ArenaEntry> _entries = [];
    private readonly Dictionary<string, int> _byName = new(StringComparer.Ordinal);

    /// <summary>The entries, in the order they were added.</summary>
    public IReadOnlyList<ArenaEntry> Entries => _entries;

    /// <summary>Total length including alignment padding (which stays zero).</summary>
    public long Length { get; private set; }

    /// <summary>Number of real values (without padding).</summary>
    public long ValueCount { get; private set; }

    /// <summary>
    /// Appends an entry at the next offset aligned to <see cref="Alignment"/> values and returns its index;
    /// throws <see cref="ArgumentException"/> when <paramref name="name"/> is already taken.
    /// </summary>
    public int Add(string name, TensorShape shape, ArenaRole role)
    {
        if (_byName.ContainsKey(name)) throw new ArgumentException($"Arena already has an entry named '{name}'.", nameof(name));
        long offset = (Length + Alignment - 1) / Alignment * Alignment;
        _entries.Add(new ArenaEntry(name, offset, shape, role));
        _byName[name] = _entries.Count - 1;
        Length = offset + shape.Length;
        ValueCount += shape.Length;
        return _entries.Count - 1;
    }

    /// <summary>The index of the entry named <paramref name="name"/>; throws <see cref="KeyNotFoundException"/> when there is none.</summary>
    public int IndexOf(string name) =>
        _byName.TryGetValue(name, out int i) ? i : throw new KeyNotFoundException($"No arena entry named '{name}'.");

    /// <summary>Looks up the index of the entry named <paramref name="name"/>; false when there is none.</summary>
    public bool TryIndexOf(string name, out int index) => _byName.TryGetValue(name, out index);
}
