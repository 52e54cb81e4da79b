namespace CudaSwa.Tensors;

/// <summary>Element types a device buffer can hold.</summary>
public enum DType
{
    /// <summary>32-bit IEEE float: activations, parameters, gradients.</summary>
    Float32,
    /// <summary>32-bit signed integer: labels and sample indices.</summary>
    Int32,
    /// <summary>Unsigned byte: raw image pixels.</summary>
    UInt8,
}

/// <summary>Helpers on <see cref="DType"/>.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element of <paramref name="t"/>: 4 for float32 and int32, 1 for uint8.</summary>
    public static int SizeInBytes(this DType t) => t switch
    {
        DType.Float32 => 4,
        DType.Int32 => 4,
        DType.UInt8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
