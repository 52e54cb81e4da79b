using CudaSwa.Native;

namespace CudaSwa.Cuda;

/// <summary>
/// One GPU: its properties and its primary context (cuDevicePrimaryCtxRetain — the context the
/// runtime API and PyTorch share; cuCtxCreate changed its signature in CUDA 13). Every thread
/// that calls into CUDA makes the context current first (<see cref="MakeCurrent"/>, cheap after
/// the first time on a thread).
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    [ThreadStatic] private static IntPtr t_current;

    private CudaDevice(int ordinal, int handle, IntPtr context)
    {
        Ordinal = ordinal;
        Handle = handle;
        Context = context;
        var name = stackalloc byte[256];
        Check.Cu(CuDriver.cuDeviceGetName(name, 256, handle));
        Name = NativeLibraries.PtrToString(name) ?? "unknown GPU";
        int major, minor, sms;
        Check.Cu(CuDriver.cuDeviceGetAttribute(&major, CuDriver.AttributeComputeCapabilityMajor, handle));
        Check.Cu(CuDriver.cuDeviceGetAttribute(&minor, CuDriver.AttributeComputeCapabilityMinor, handle));
        Check.Cu(CuDriver.cuDeviceGetAttribute(&sms, CuDriver.AttributeMultiprocessorCount, handle));
        nuint total;
        Check.Cu(CuDriver.cuDeviceTotalMem(&total, handle));
        ComputeCapability = major * 10 + minor;
        Multiprocessors = sms;
        TotalMemory = (long)total;
        int version;
        Check.Cu(CuDriver.cuDriverGetVersion(&version));
        DriverVersion = version;
    }

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
    public static int Count()
    {
        if (!NativeLibraries.TryLoad(NativeLibraries.Cuda, out _, out _))
            throw new DllNotFoundException($"the NVIDIA driver library libcuda.so.1 was not found ({NativeLibraries.Trace(NativeLibraries.Cuda)})");
        Check.Cu(CuDriver.cuInit(0));
        int count;
        Check.Cu(CuDriver.cuDeviceGetCount(&count));
        return count;
    }

    public static CudaDevice Open(int ordinal)
    {
        int count = Count();
        if (count == 0) throw new CudaException("the NVIDIA driver reports no CUDA device");
        if (ordinal < 0 || ordinal >= count) throw new CudaException($"device cuda:{ordinal} does not exist; this machine has {count} (cuda:0..cuda:{count - 1})");
        int handle;
        Check.Cu(CuDriver.cuDeviceGet(&handle, ordinal));
        IntPtr context;
        Check.Cu(CuDriver.cuDevicePrimaryCtxRetain(&context, handle));
        var device = new CudaDevice(ordinal, handle, context);
        device.MakeCurrent();
        return device;
    }

    public void MakeCurrent()
    {
        if (t_current == Context) return;
        Check.Cu(CuDriver.cuCtxSetCurrent(Context));
        t_current = Context;
    }

    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        Check.Cu(CuDriver.cuMemGetInfo(&free, &total));
        return ((long)free, (long)total);
    }

    public void Dispose()
    {
        if (Context == IntPtr.Zero) return;
        CuDriver.cuDevicePrimaryCtxRelease(Handle);
        if (t_current == Context) t_current = IntPtr.Zero;
        Context = IntPtr.Zero;
    }
}
