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

    /// <inheritdoc/>
    private protected override void FillCore(Tensor t, float value) => CpuPointwise.Fill(t, value);
    /// <inheritdoc/>
    private protected override void CopyCore(Tensor source, Tensor destination) => CpuPointwise.CopyBytes(source, destination);
}
