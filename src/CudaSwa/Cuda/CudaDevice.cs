using CudaSwa.Native;

namespace CudaSwa.Cuda;

/// <summary>
/// One GPU: its properties and its primary context (cuDevicePrimaryCtxRetain — the context the
/// runtime API and PyTorch share; cuCtxCreate changed its signature in CUDA 13), reached through
/// the driver it was opened with. Every op makes the context current first (<see cref="MakeCurrent"/>,
/// cheap after the first time on a thread); code that may run where another context is current
/// (freeing from a finalizer, disposing) uses <see cref="Activate"/>, which puts the previous one back.
/// </summary>
internal sealed unsafe class CudaDevice : IDisposable
{
    [ThreadStatic] private static IntPtr t_current;

    private CudaDevice(CuDriver driver, int ordinal, int handle, IntPtr context)
    {
        Driver = driver;
        Ordinal = ordinal;
        Handle = handle;
        Context = context;
        var name = stackalloc byte[256];
        driver.Check(driver.cuDeviceGetName(name, 256, handle));
        Name = NativeLibraries.PtrToString(name) ?? "unknown GPU";
        int major, minor, sms;
        driver.Check(driver.cuDeviceGetAttribute(&major, CuDriver.AttributeComputeCapabilityMajor, handle));
        driver.Check(driver.cuDeviceGetAttribute(&minor, CuDriver.AttributeComputeCapabilityMinor, handle));
        driver.Check(driver.cuDeviceGetAttribute(&sms, CuDriver.AttributeMultiprocessorCount, handle));
        nuint total;
        driver.Check(driver.cuDeviceTotalMem(&total, handle));
        ComputeCapability = major * 10 + minor;
        Multiprocessors = sms;
        TotalMemory = (long)total;
        int version;
        driver.Check(driver.cuDriverGetVersion(&version));
        DriverVersion = version;
    }

    public CuDriver Driver { get; }
    public int Ordinal { get; }
    public int Handle { get; }
    public IntPtr Context { get; private set; }
    public string Name { get; }
    public int ComputeCapability { get; }
    public int Multiprocessors { get; }
    public long TotalMemory { get; }

    /// <summary>CUDA driver version as 1000*major + 10*minor (e.g. 13000).</summary>
    public int DriverVersion { get; }

    public static string FormatVersion(int v) => $"{v / 1000}.{v % 1000 / 10}";

    public override string ToString() =>
        $"cuda:{Ordinal} {Name} (sm_{ComputeCapability}, {Multiprocessors} SMs, {TotalMemory / 1073741824.0:F1} GiB), driver CUDA {FormatVersion(DriverVersion)}";

    /// <summary>Initialises the driver and counts devices; throws <see cref="CudaException"/> or DllNotFoundException with the reason.</summary>
    public static int Count(CuDriver? driver = null)
    {
        driver ??= CuDriver.System;
        driver.Check(driver.cuInit(0));
        int count;
        driver.Check(driver.cuDeviceGetCount(&count));
        return count;
    }

    /// <summary>Opens device <paramref name="ordinal"/> of the NVIDIA driver, or of <paramref name="driver"/> when given.</summary>
    public static CudaDevice Open(int ordinal, CuDriver? driver = null)
    {
        driver ??= CuDriver.System;
        int count = Count(driver);
        if (count == 0) throw new CudaException("the NVIDIA driver reports no CUDA device");
        if (ordinal < 0 || ordinal >= count) throw new CudaException($"device cuda:{ordinal} does not exist; this machine has {count} (cuda:0..cuda:{count - 1})");
        int handle;
        driver.Check(driver.cuDeviceGet(&handle, ordinal));
        IntPtr context;
        driver.Check(driver.cuDevicePrimaryCtxRetain(&context, handle));
        try
        {
            var device = new CudaDevice(driver, ordinal, handle, context);
            device.MakeCurrent();
            return device;
        }
        catch
        {
            driver.cuDevicePrimaryCtxRelease(handle);
            throw;
        }
    }

    public void MakeCurrent()
    {
        if (t_current == Context) return;
        Driver.Check(Driver.cuCtxSetCurrent(Context));
        t_current = Context;
    }

    /// <summary>Makes this device's context current until the scope ends, then restores whatever was current before.</summary>
    public ContextScope Activate()
    {
        IntPtr previous;
        if (Driver.cuCtxGetCurrent(&previous) != CuResult.Success) previous = IntPtr.Zero;
        if (previous != Context && Driver.cuCtxSetCurrent(Context) == CuResult.Success) t_current = Context;
        return new ContextScope(this, previous);
    }

    public readonly struct ContextScope(CudaDevice device, IntPtr previous) : IDisposable
    {
        public void Dispose()
        {
            if (device is null || previous == device.Context) return;
            if (device.Driver.cuCtxSetCurrent(previous) == CuResult.Success) t_current = previous;
        }
    }

    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        Driver.Check(Driver.cuMemGetInfo(&free, &total));
        return ((long)free, (long)total);
    }

    public void Dispose()
    {
        if (Context == IntPtr.Zero) return;
        Driver.cuDevicePrimaryCtxRelease(Handle);
        if (t_current == Context) t_current = IntPtr.Zero;
        Context = IntPtr.Zero;
    }
}
