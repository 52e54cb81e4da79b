using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    public override bool MemoryIsHostVisible => true;

    /// <inheritdoc/>
    private protected override Span<float> HostSpanCore(Tensor t) => CpuTensor.Span(t);

    /// <inheritdoc/>
    private protected override DeviceBuffer AllocateCore(long length, DType dtype) => new CpuBuffer(this, length, dtype);

    /// <inheritdoc/>
    private protected override void UploadCore(ReadOnlySpan<byte> source, Tensor destination) =>
        source.CopyTo(new Span<byte>((byte*)((CpuBuffer)destination.Buffer).Pointer + destination.Offset * destination.DType.SizeInBytes(), source.Length));

    /// <inheritdoc/>
    private protected override void DownloadCore(Tensor source, Span<byte> destination) =>
        new ReadOnlySpan<byte>((byte*)((CpuBuffer)source.Buffer).Pointer + source.Offset * source.DType.SizeInBytes(), destination.Length).CopyTo(destination);

    private protected override void FillCore(Tensor t, float value)
    {
        nint p = (nint)CpuTensor.Ptr(t);
        CpuParallel.ForRange(t.Length, Elementwise.MinChunk, (s, e) => new Span<float>((float*)p + s, (int)(e - s)).Fill(value));
    }

    private protected override void CopyCore(Tensor source, Tensor destination)
    {
        int size = source.DType.SizeInBytes();
        byte* src = (byte*)((CpuBuffer)source.Buffer).Pointer + source.Offset * size;
        byte* dst = (byte*)((CpuBuffer)destination.Buffer).Pointer + destination.Offset * size;
        Buffer.MemoryCopy(src, dst, destination.Length * size, source.Length * size);
    }
}
