namespace CudaSwa.Tensors;

/// <summary>
/// Shape of a tensor of rank 1 to 4. Rank-4 shapes are NCHW; lower ranks read missing trailing
/// dimensions as 1, so a (N, F) matrix is seen as (N, F, 1, 1) by ops that think in NCHW.
/// </summary>
public readonly struct TensorShape : IEquatable<TensorShape>
{
    private readonly int _d0, _d1, _d2, _d3;

    /// <summary>Number of dimensions, 1 to 4.</summary>
    public int Rank { get; }

    /// <summary>A shape of 1 to 4 non-negative dimensions, outermost first; throws <see cref="ArgumentException"/> otherwise.</summary>
    public TensorShape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        if (dims.Length is < 1 or > 4)
            throw new ArgumentException($"A tensor shape has 1 to 4 dimensions; got {dims.Length}.", nameof(dims));
        foreach (int d in dims)
            if (d < 0)
                throw new ArgumentException($"Dimensions must be non-negative; got ({string.Join(", ", dims)}).", nameof(dims));
        Rank = dims.Length;
        _d0 = dims[0];
        _d1 = dims.Length > 1 ? dims[1] : 1;
        _d2 = dims.Length > 2 ? dims[2] : 1;
        _d3 = dims.Length > 3 ? dims[3] : 1;
    }

    /// <summary>A rank-4 shape: batch <paramref name="n"/>, channels <paramref name="c"/>, height <paramref name="h"/>, width <paramref name="w"/>.</summary>
    public static TensorShape Nchw(int n, int c, int h, int w) => new(n, c, h, w);

    /// <summary>Dimension <paramref name="axis"/> (0 to 3); axes at or beyond <see cref="Rank"/> read as 1.</summary>
    public int this[int axis] => axis switch
    {
        0 => _d0,
        1 => _d1,
        2 => _d2,
        3 => _d3,
        _ => throw new ArgumentOutOfRangeException(nameof(axis)),
    };

    /// <summary>Axis 0: the batch size (or the only dimension of a rank-1 shape).</summary>
    public int N => _d0;
    /// <summary>Axis 1: channels, or features of a matrix; 1 when the rank is lower.</summary>
    public int C => _d1;
    /// <summary>Axis 2: height; 1 when the rank is lower.</summary>
    public int H => _d2;
    /// <summary>Axis 3: width; 1 when the rank is lower.</summary>
    public int W => _d3;

    /// <summary>Elements per sample (everything after the batch axis).</summary>
    public long SampleLength => (long)_d1 * _d2 * _d3;

    /// <summary>Number of elements: the product of the dimensions.</summary>
    public long Length => Rank == 0 ? 0 : (long)_d0 * _d1 * _d2 * _d3;

    /// <summary>The same shape with another batch size (axis 0).</summary>
    public TensorShape WithBatch(int n) => Rank switch
    {
        1 => new TensorShape(n),
        2 => new TensorShape(n, _d1),
        3 => new TensorShape(n, _d1, _d2),
        _ => new TensorShape(n, _d1, _d2, _d3),
    };

    /// <summary>The dimensions as an array of <see cref="Rank"/> values.</summary>
    public int[] ToArray()
    {
        int[] all = [_d0, _d1, _d2, _d3];
        return all[..Rank];
    }

    /// <summary>True when both shapes have the same rank and dimensions.</summary>
    public bool Equals(TensorShape other) =>
        Rank == other.Rank && _d0 == other._d0 && _d1 == other._d1 && _d2 == other._d2 && _d3 == other._d3;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is TensorShape s && Equals(s);
    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Rank, _d0, _d1, _d2, _d3);
    /// <summary>True when the shapes have the same rank and dimensions.</summary>
    public static bool operator ==(TensorShape a, TensorShape b) => a.Equals(b);
    /// <summary>True when the shapes differ in rank or in any dimension.</summary>
    public static bool operator !=(TensorShape a, TensorShape b) => !a.Equals(b);

    /// <inheritdoc/>
    public override string ToString() => "(" + string.Join(", ", ToArray()) + ")";
}
