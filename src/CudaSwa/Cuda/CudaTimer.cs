using CudaSwa.Native;

namespace CudaSwa.Cuda;

/// <summary>Device-side timing with a pair of CUDA events on the legacy default stream (for benchmarks).</summary>
public sealed unsafe class CudaTimer : IDisposable
{
    private readonly CudaDevice _device;
    private IntPtr _start, _stop;

    public CudaTimer(CudaDevice device)
    {
        _device = device;
        device.MakeCurrent();
        IntPtr a, b;
        Check.Cu(CuDriver.cuEventCreate(&a, 0));
        Check.Cu(CuDriver.cuEventCreate(&b, 0));
        _start = a;
        _stop = b;
    }

    public void Start()
    {
        _device.MakeCurrent();
        Check.Cu(CuDriver.cuEventRecord(_start, IntPtr.Zero));
    }

    /// <summary>Records the stop event, waits for it, and returns the device time since Start in seconds.</summary>
    public double Stop()
    {
        _device.MakeCurrent();
        Check.Cu(CuDriver.cuEventRecord(_stop, IntPtr.Zero));
        Check.Cu(CuDriver.cuEventSynchronize(_stop));
        float ms;
        Check.Cu(CuDriver.cuEventElapsedTime(&ms, _start, _stop));
        return ms / 1000.0;
    }

    public void Dispose()
    {
        if (_start == IntPtr.Zero || _device.Context == IntPtr.Zero) return;
        _device.MakeCurrent();
        CuDriver.cuEventDestroy(_start);
        CuDriver.cuEventDestroy(_stop);
        _start = _stop = IntPtr.Zero;
    }
}
