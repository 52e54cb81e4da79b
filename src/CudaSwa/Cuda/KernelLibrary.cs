using System.Text;
using CudaSwa.Native;

namespace CudaSwa.Cuda;

/// <summary>
/// The kernels of one device: each kernels/*.cu compiled by <see cref="KernelCompiler"/> on first
/// use — a CUBIN for the device's architecture when NVRTC knows it, otherwise PTX for the newest
/// architecture NVRTC supports, which the driver JIT-compiles (only where NVRTC is not newer than
/// the driver: a driver cannot JIT PTX from a newer compiler) — loaded as a module, and launched
/// with typed arguments (<see cref="CudaBackend.Kernels"/>). Where the driver can report a kernel's parameter
/// layout (CUDA 12.4+), it is compared with the declared argument struct when the kernel is loaded.
/// With <see cref="LaunchBlocking"/> every launch is followed by a synchronisation, so an error a
/// kernel causes is reported as that kernel's (CUDASWA_LAUNCH_BLOCKING=1, or CUDA_LAUNCH_BLOCKING=1).
/// </summary>
internal sealed unsafe class KernelLibrary : IDisposable
{
    private readonly CudaDevice _device;
    private readonly CuDriver _driver;
    private readonly Dictionary<string, IntPtr> _modules = new(StringComparer.Ordinal);
    private static readonly KernelSpec?[] s_declared = Declared();
    private readonly IntPtr[] _functions = new IntPtr[s_declared.Length];
    private readonly object _gate = new();

    public KernelLibrary(CudaDevice device, KernelCompiler compiler)
    {
        _device = device;
        _driver = device.Driver;
        Compiler = compiler;
        int arch = device.ComputeCapability;
        if (compiler.SupportedArchitectures.Contains(arch))
        {
            Architecture = arch;
            Cubin = true;
        }
        else
        {
            Architecture = compiler.SupportedArchitectures.Where(a => a <= arch).DefaultIfEmpty(0).Max();
            if (Architecture == 0)
                throw new CudaException($"NVRTC {compiler.NvrtcVersion} supports no architecture at or below the device's sm_{arch} ({string.Join(", ", compiler.SupportedArchitectures)}).");
            if (compiler.NvrtcVersionNumber > device.DriverVersion)
                throw new CudaException($"NVRTC {compiler.NvrtcVersion} does not know sm_{arch}, and its PTX is too new for the driver (CUDA {CudaDevice.FormatVersion(device.DriverVersion)}) to compile: use an NVRTC that knows sm_{arch}, or update the driver.");
        }
        LaunchBlocking = Environment.GetEnvironmentVariable("CUDASWA_LAUNCH_BLOCKING") == "1" || Environment.GetEnvironmentVariable("CUDA_LAUNCH_BLOCKING") == "1";
    }

    public KernelCompiler Compiler { get; }
    public string NvrtcVersion => Compiler.NvrtcVersion;
    public string CacheFolder => Compiler.CacheFolder;

    /// <summary>The architecture images are built for, and whether they are CUBIN (else PTX).</summary>
    public int Architecture { get; }
    public bool Cubin { get; }

    /// <summary>Synchronise after every launch so a failure is attributed to the kernel that caused it.</summary>
    public bool LaunchBlocking { get; set; }

    /// <summary>Launches <paramref name="kernel"/> on a 1-D grid on the legacy default stream (ordered with every other op).</summary>
    public void Launch<TArgs>(KernelSpec<TArgs> kernel, uint grid, uint block, in TArgs args) where TArgs : unmanaged
    {
        if (grid == 0) return;
        IntPtr function = Function(kernel);
        TArgs copy = args;
        var parameters = kernel.Parameters;
        void** pointers = stackalloc void*[parameters.Count];
        byte* bytes = (byte*)&copy;
        for (int i = 0; i < parameters.Count; i++) pointers[i] = bytes + parameters[i].Offset;
        var r = _driver.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, 0, IntPtr.Zero, pointers, null);
        if (r != CuResult.Success) throw new CudaException(_driver.Describe(r, $"launch of kernel {kernel.Name} (grid {grid}, block {block})"), (int)r);
        if (LaunchBlocking)
        {
            r = _driver.cuCtxSynchronize();
            if (r != CuResult.Success) throw new CudaException(_driver.Describe(r, $"kernel {kernel.Name} (grid {grid}, block {block}, run with launch-blocking)"), (int)r);
        }
    }

    /// <summary>Loads every kernel now (compiles what the cache lacks), so timings exclude compilation.</summary>
    public void LoadAll()
    {
        foreach (var k in CudaBackend.Kernels.All) Function(k);
    }

    /// <summary>A kernel's function handle, compiled and loaded on first use, its parameters checked where the driver can.</summary>
    public IntPtr Function(KernelSpec kernel)
    {
        if ((uint)kernel.Id >= (uint)s_declared.Length || !ReferenceEquals(s_declared[kernel.Id], kernel))
            throw new ArgumentException($"kernel {kernel} is not declared in CudaBackend.Kernels.All, so it is not built into the engine", nameof(kernel));
        IntPtr f = _functions[kernel.Id];
        if (f != IntPtr.Zero) return f;
        lock (_gate)
        {
            if (_functions[kernel.Id] != IntPtr.Zero) return _functions[kernel.Id];
            IntPtr module = Module(kernel.File);
            var name = Encoding.UTF8.GetBytes(kernel.Name + "\0");
            fixed (byte* pn = name) _driver.Check(_driver.cuModuleGetFunction(&f, module, pn), $"cuModuleGetFunction({kernel.File}: {kernel.Name})");
            CheckParameters(kernel, f);
            _functions[kernel.Id] = f;
            return f;
        }
    }

    private static KernelSpec?[] Declared()
    {
        var table = new KernelSpec?[CudaBackend.Kernels.All.Max(k => k.Id) + 1];
        foreach (var k in CudaBackend.Kernels.All) table[k.Id] = k;
        return table;
    }

    /// <summary>The compiled kernel's parameter layout (CUDA 12.4+), or null where the driver cannot tell.</summary>
    public IReadOnlyList<(int Offset, int Size)>? ParameterLayout(IntPtr function)
    {
        if (_driver.cuFuncGetParamInfo == null) return null;
        var layout = new List<(int, int)>();
        for (nuint i = 0; i < 256; i++)
        {
            nuint offset, size;
            if (_driver.cuFuncGetParamInfo(function, i, &offset, &size) != CuResult.Success) break;
            layout.Add(((int)offset, (int)size));
        }
        return layout;
    }

    private void CheckParameters(KernelSpec kernel, IntPtr function)
    {
        var actual = ParameterLayout(function);
        if (actual is null) return;
        var declared = kernel.Parameters.Select(p => (p.Offset, p.Size)).ToList();
        if (!actual.SequenceEqual(declared))
            throw new CudaException($"kernel {kernel.File}:{kernel.Name} takes parameters (offset:size) {string.Join(", ", actual.Select(a => $"{a.Offset}:{a.Size}"))}, " +
                $"but its declaration in Kernels passes {string.Join(", ", kernel.Parameters)}: the two must match");
    }

    private IntPtr Module(string file)
    {
        if (_modules.TryGetValue(file, out var m)) return m;
        using var scope = _device.Activate();
        var image = Compiler.Compile(file, Architecture, Cubin);
        IntPtr module;
        CuResult result;
        fixed (byte* p = image.Bytes) result = _driver.cuModuleLoadData(&module, p);
        if (result != CuResult.Success && image.FromCache)
        {
            // A stale or damaged cache entry: compile afresh once (this also replaces the entry).
            image = Compiler.Compile(file, Architecture, Cubin, ignoreCache: true);
            fixed (byte* p = image.Bytes) result = _driver.cuModuleLoadData(&module, p);
        }
        _driver.Check(result, $"cuModuleLoadData({file} for sm_{_device.ComputeCapability}, {(Cubin ? "CUBIN" : "PTX")} for {Architecture} from NVRTC {NvrtcVersion})");
        _modules[file] = module;
        return module;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_device.Context != IntPtr.Zero)
            {
                using var scope = _device.Activate();
                foreach (var m in _modules.Values) _driver.cuModuleUnload(m);
            }
            _modules.Clear();
            Array.Clear(_functions);
        }
    }
}
