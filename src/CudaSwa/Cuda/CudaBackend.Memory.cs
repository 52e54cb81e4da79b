using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- memory

    /// <inheritdoc/>
    public override bool MemoryIsHostVisible => false;

    /// <inheritdoc/>
    private protected override DeviceBuffer AllocateCore(long length, DType dtype)
    {
        Ctx();
        return new CudaBuffer(this, _device, length, dtype);
    }

    /// <inheritdoc/>
    private protected override void UploadCore(ReadOnlySpan<byte> source, Tensor destination)
    {
        Ctx();
        if (source.Length == 0) return;
        fixed (byte* s = source) _driver.Check(_driver.cuMemcpyHtoD(P(destination).Address, s, (nuint)source.Length), $"cuMemcpyHtoD({source.Length} bytes)");
    }

    /// <inheritdoc/>
    private protected override void DownloadCore(Tensor source, Span<byte> destination)
    {
        Ctx();
        if (destination.Length == 0) return;
        fixed (byte* d = destination) _driver.Check(_driver.cuMemcpyDtoH(d, P(source).Address, (nuint)destination.Length), $"cuMemcpyDtoH({destination.Length} bytes)");
    }

    /// <inheritdoc/>
    private protected override void FillCore(Tensor t, float value)
    {
        Ctx();
        if (t.Length == 0) return;
        _driver.Check(_driver.cuMemsetD32Async(P(t).Address, BitConverter.SingleToUInt32Bits(value), (nuint)t.Length, IntPtr.Zero), $"cuMemsetD32Async({t.Length} values)");
    }

    /// <inheritdoc/>
    private protected override void CopyCore(Tensor source, Tensor destination)
    {
        Ctx();
        if (source.Length == 0) return;
        long bytes = source.Length * source.DType.SizeInBytes();
        _driver.Check(_driver.cuMemcpyDtoDAsync(P(destination).Address, P(source).Address, (nuint)bytes, IntPtr.Zero), $"cuMemcpyDtoDAsync({bytes} bytes)");
    }

    /// <inheritdoc/>
    public override void Synchronize()
    {
        Ctx();
        _driver.Check(_driver.cuCtxSynchronize());
    }
}
