namespace CudaSwa.Tensors;

/// <summary>Element types a device buffer can hold.</summary>
public enum DType
{
    Float32,
    Int32,
    UInt8,
}

public static class DTypeExtensions
{
    public static int SizeInBytes(this DType t) => t switch
    {
        DType.Float32 => 4,
        DType.Int32 => 4,
        DType.UInt8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
