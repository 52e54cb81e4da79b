using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>Device memory from cuMemAlloc (256-byte aligned), freed with cuMemFree on dispose or finalisation.</summary>
internal sealed unsafe class CudaBuffer : DeviceBuffer
{
    private readonly CudaDevice _device;

    internal CudaBuffer(CudaBackend backend, CudaDevice device, long length, DType dtype) : base(backend, length, dtype)
    {
        _device = device;
        device.MakeCurrent();
        ulong pointer;
        var driver = device.Driver;
        var result = driver.cuMemAlloc(&pointer, (nuint)Math.Max(256, length * dtype.SizeInBytes()));
        if (result == CuResult.OutOfMemory)
        {
            var (free, total) = device.MemoryInfo();
            throw new OutOfMemoryException($"GPU out of memory: {length * dtype.SizeInBytes() / 1048576.0:F1} MiB asked for, {free / 1048576.0:F0} of {total / 1048576.0:F0} MiB free on {device.Name}.");
        }
        driver.Check(result, $"cuMemAlloc({length * dtype.SizeInBytes()} bytes)");
        Pointer = pointer;
    }

    public ulong Pointer { get; private set; }

    internal DevicePtr Address => new(Pointer);

    protected override void Free()
    {
        if (Pointer == 0 || _device.Context == IntPtr.Zero) return;
        // Finalizers run on another thread, and a caller may have another device's context
        // current: free in this buffer's context and put the caller's back.
        using (_device.Activate()) _device.Driver.cuMemFree(Pointer);
        Pointer = 0;
    }
}
