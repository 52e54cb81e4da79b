namespace CudaSwa.Cuda;

/// <summary>Device-side timing with a pair of CUDA events on the legacy default stream (for benchmarks).</summary>
internal sealed unsafe class CudaTimer : IDisposable
{
    private readonly CudaDevice _device;
    private IntPtr _start, _stop;

    public CudaTimer(CudaBackend backend)
    {
        _device = backend.Device;
        _device.MakeCurrent();
        IntPtr a, b;
        var driver = _device.Driver;
        driver.Check(driver.cuEventCreate(&a, 0));
        try { driver.Check(driver.cuEventCreate(&b, 0)); }
        catch
        {
            driver.cuEventDestroy(a);
            throw;
        }
        _start = a;
        _stop = b;
    }

    public void Start()
    {
        _device.MakeCurrent();
        _device.Driver.Check(_device.Driver.cuEventRecord(_start, IntPtr.Zero));
    }

    /// <summary>Records the stop event, waits for it, and returns the device time since Start in seconds.</summary>
    public double Stop()
    {
        _device.MakeCurrent();
        var driver = _device.Driver;
        driver.Check(driver.cuEventRecord(_stop, IntPtr.Zero));
        driver.Check(driver.cuEventSynchronize(_stop));
        float ms;
        driver.Check(driver.cuEventElapsedTime(&ms, _start, _stop));
        return ms / 1000.0;
    }

    public void Dispose()
    {
        if (_start == IntPtr.Zero || _device.Context == IntPtr.Zero) return;
        using (_device.Activate())
        {
            _device.Driver.cuEventDestroy(_start);
            _device.Driver.cuEventDestroy(_stop);
        }
        _start = _stop = IntPtr.Zero;
    }
}
