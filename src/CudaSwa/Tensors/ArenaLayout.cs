namespace CudaSwa.Tensors;

/// <summary>What a slot of an arena holds; decides initialisation, checkpoint names and what averaging touches.</summary>
public enum ArenaRole
{
    ConvWeight,
    LinearWeight,
    Bias,
    BatchNormScale,
    BatchNormShift,
    BatchNormRunningMean,
    BatchNormRunningVar,
}

/// <summary>One named view of an arena: PyTorch state_dict name, element offset, shape.</summary>
public sealed record ArenaEntry(string Name, long Offset, TensorShape Shape, ArenaRole Role)
{
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

    public IReadOnlyList<ArenaEntry> Entries => _entries;

    /// <summary>Total length including alignment padding (which stays zero).</summary>
    public long Length { get; private set; }

    /// <summary>Number of real values (without padding).</summary>
    public long ValueCount { get; private set; }

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

    public int IndexOf(string name) =>
        _byName.TryGetValue(name, out int i) ? i : throw new KeyNotFoundException($"No arena entry named '{name}'.");

    public bool TryIndexOf(string name, out int index) => _byName.TryGetValue(name, out index);
}
