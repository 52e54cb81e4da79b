using System.Runtime.InteropServices;
using CudaSwa.Cuda;

namespace CudaSwa.Tests.Emulation;

/// <summary>
/// Native host memory for emulated kernels (which take raw addresses): 64-byte aligned plus an
/// optional element offset (to hand a kernel a misaligned pointer), filled with all-ones bytes
/// (NaN as float) until written, freed on dispose.
/// </summary>
internal sealed unsafe class HostArray<T> : IDisposable where T : unmanaged
{
    private void* _block;

    public HostArray(int length, int offsetElements = 0)
    {
        Length = length;
        nuint bytes = (nuint)((length + offsetElements) * sizeof(T) + 64);
        _block = NativeMemory.AlignedAlloc(bytes, 64);
        new Span<byte>(_block, (int)bytes).Fill(0xFF);
        Pointer = (T*)_block + offsetElements;
    }

    public static HostArray<T> Of(ReadOnlySpan<T> values, int offsetElements = 0)
    {
        var a = new HostArray<T>(values.Length, offsetElements);
        values.CopyTo(a.Span);
        return a;
    }

    public int Length { get; }
    public T* Pointer { get; }
    public Span<T> Span => new(Pointer, Length);
    public DevicePtr Ptr => new((ulong)Pointer);

    public T[] ToArray() => Span.ToArray();

    public void Dispose()
    {
        if (_block == null) return;
        NativeMemory.AlignedFree(_block);
        _block = null;
    }
}
