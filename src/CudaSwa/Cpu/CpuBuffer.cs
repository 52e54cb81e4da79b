using System.Runtime.InteropServices;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

/// <summary>Host memory for the CPU backend: 64-byte aligned (one cache line, one AVX-512 vector), zeroed.</summary>
internal sealed unsafe class CpuBuffer : DeviceBuffer
{
    private void* _pointer;

    internal CpuBuffer(Backend backend, long length, DType dtype) : base(backend, length, dtype)
    {
        nuint bytes = (nuint)Math.Max(64, length * dtype.SizeInBytes());
        _pointer = NativeMemory.AlignedAlloc(bytes, 64);
        if (_pointer == null) throw new OutOfMemoryException($"Could not allocate {bytes} bytes of host memory.");
        NativeMemory.Clear(_pointer, bytes);
    }

    public void* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(nameof(CpuBuffer));

    protected override void Free()
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}

/// <summary>Typed access to CPU tensors.</summary>
internal static unsafe class CpuTensor
{
    public static float* Ptr(Tensor t) => (float*)((CpuBuffer)t.Buffer).Pointer + t.Offset;

    public static int* IntPtr(Tensor t) => (int*)((CpuBuffer)t.Buffer).Pointer + t.Offset;

    public static byte* BytePtr(Tensor t) => (byte*)((CpuBuffer)t.Buffer).Pointer + t.Offset;

    public static Span<float> Span(Tensor t) => new(Ptr(t), checked((int)t.Length));
}
