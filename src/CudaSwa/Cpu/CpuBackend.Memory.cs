using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    public override bool MemoryIsHostVisible => true;

    /// <inheritdoc/>
    protected override Span<float> HostSpanCore(Tensor t) => CpuTensor.Span(t);

    /// <inheritdoc/>
    protected override DeviceBuffer AllocateCore(long length, DType dtype) => new CpuBuffer(this, length, dtype);

    /// <inheritdoc/>
    protected override void UploadCore(ReadOnlySpan<byte> source, Tensor destination) =>
        source.CopyTo(new Span<byte>((byte*)((CpuBuffer)destination.Buffer).Pointer + destination.Offset * destination.DType.SizeInBytes(), source.Length));

    /// <inheritdoc/>
    protected override void DownloadCore(Tensor source, Span<byte> destination) =>
        new ReadOnlySpan<byte>((byte*)((CpuBuffer)source.Buffer).Pointer + source.Offset * source.DType.SizeInBytes(), destination.Length).CopyTo(destination);

    /// <inheritdoc/>
    protected override void FillCore(Tensor t, float value) => CpuPointwise.Fill(t, value);
    /// <inheritdoc/>
    protected override void CopyCore(Tensor source, Tensor destination) => CpuPointwise.CopyBytes(source, destination);
}
