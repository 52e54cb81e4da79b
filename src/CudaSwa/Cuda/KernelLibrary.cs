using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using CudaSwa.IO;
using CudaSwa.Native;

namespace CudaSwa.Cuda;

/// <summary>
/// The kernels of kernels/*.cu, embedded in this assembly, compiled by NVRTC on first use — once
/// per (source hash, options, device architecture, NVRTC version) — and cached on disk
/// (CUDASWA_KERNEL_CACHE, else $XDG_CACHE_HOME/cudaswa/kernels, else ~/.cache/cudaswa/kernels).
/// CUBIN for the device's exact architecture when NVRTC knows it, otherwise PTX for the newest
/// architecture NVRTC supports (the driver JIT-compiles it). Compile errors carry NVRTC's log.
/// </summary>
public sealed unsafe class KernelLibrary : IDisposable
{
    private readonly CudaDevice _device;
    private readonly Dictionary<string, IntPtr> _modules = new(StringComparer.Ordinal);
    private readonly Dictionary<(string File, string Kernel), IntPtr> _functions = new(); // keyed without building a string: looked up on every launch
    private readonly object _gate = new();

    public KernelLibrary(CudaDevice device)
    {
        _device = device;
        int major, minor;
        Check.Nvrtc(NvrtcApi.nvrtcVersion(&major, &minor));
        NvrtcVersion = $"{major}.{minor}";
        int count;
        Check.Nvrtc(NvrtcApi.nvrtcGetNumSupportedArchs(&count));
        var archs = new int[count];
        fixed (int* p = archs) Check.Nvrtc(NvrtcApi.nvrtcGetSupportedArchs(p));
        SupportedArchitectures = archs;
        CacheFolder = ResolveCacheFolder();
    }

    public string NvrtcVersion { get; }
    public IReadOnlyList<int> SupportedArchitectures { get; }
    public string CacheFolder { get; }

    private static string ResolveCacheFolder()
    {
        string? explicitDir = Environment.GetEnvironmentVariable("CUDASWA_KERNEL_CACHE");
        if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "cudaswa", "kernels");
    }

    /// <summary>The source of an embedded kernel file (kernels/NAME).</summary>
    public static string Source(string file)
    {
        var asm = typeof(KernelLibrary).Assembly;
        using var stream = asm.GetManifestResourceStream("kernels/" + file)
            ?? throw new FileNotFoundException($"Kernel source kernels/{file} is not embedded in {asm.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Every embedded header (.cuh), passed to NVRTC for #include.</summary>
    private static (string Name, string Text)[] Headers() =>
        typeof(KernelLibrary).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("kernels/", StringComparison.Ordinal) && n.EndsWith(".cuh", StringComparison.Ordinal))
            .OrderBy(n => n, StringComparer.Ordinal)
            .Select(n => (n["kernels/".Length..], Source(n["kernels/".Length..])))
            .ToArray();

    /// <summary>A kernel entry point (extern "C" name) from a kernel file, compiled and loaded on first use.</summary>
    public IntPtr Function(string file, string kernel)
    {
        var key = (file, kernel);
        lock (_gate)
        {
            if (_functions.TryGetValue(key, out var f)) return f;
            IntPtr module = Module(file);
            IntPtr function;
            var name = Encoding.UTF8.GetBytes(kernel + "\0");
            fixed (byte* pn = name) Check.Cu(CuDriver.cuModuleGetFunction(&function, module, pn));
            _functions[key] = function;
            return function;
        }
    }

    private IntPtr Module(string file)
    {
        if (_modules.TryGetValue(file, out var m)) return m;
        _device.MakeCurrent();
        string source = Source(file);
        var headers = Headers();
        int arch = _device.ComputeCapability;
        bool cubin = SupportedArchitectures.Contains(arch);
        int target = cubin ? arch : SupportedArchitectures.Where(a => a <= arch).DefaultIfEmpty(SupportedArchitectures.Min()).Max();
        string[] options = [cubin ? $"--gpu-architecture=sm_{target}" : $"--gpu-architecture=compute_{target}", "--std=c++17", "-DCUDASWA_NVRTC=1"];
        string hash = Hash(source, headers, options);
        string cached = Path.Combine(CacheFolder, $"{Path.GetFileNameWithoutExtension(file)}-{hash}.{(cubin ? "cubin" : "ptx")}");
        byte[]? image = null;
        bool compiledNow = false;
        if (File.Exists(cached))
        {
            try { image = File.ReadAllBytes(cached); } catch (IOException) { image = null; }
        }
        if (image is null)
        {
            image = Compile(file, source, headers, options, cubin);
            compiledNow = true;
            try { AtomicFile.WriteAllBytes(cached, image); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the cache is an optimisation */ }
        }
        IntPtr module;
        CuResult result;
        fixed (byte* p = image) result = CuDriver.cuModuleLoadData(&module, p);
        if (result != CuResult.Success && !compiledNow)
        {
            // A stale or damaged cache entry: drop it and compile afresh once.
            try { File.Delete(cached); } catch (IOException) { }
            image = Compile(file, source, headers, options, cubin);
            fixed (byte* p = image) result = CuDriver.cuModuleLoadData(&module, p);
        }
        Check.Cu(result, $"cuModuleLoadData({file} for sm_{arch}, {(cubin ? "CUBIN" : "PTX")} from NVRTC {NvrtcVersion})");
        _modules[file] = module;
        return module;
    }

    private string Hash(string source, (string Name, string Text)[] headers, string[] options)
    {
        var sb = new StringBuilder(source);
        foreach (var (n, t) in headers) sb.Append('\0').Append(n).Append('\0').Append(t);
        foreach (var o in options) sb.Append('\0').Append(o);
        sb.Append('\0').Append(NvrtcVersion).Append('\0').Append(_device.ComputeCapability);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..16].ToLowerInvariant();
    }

    private static byte[] Compile(string file, string source, (string Name, string Text)[] headers, string[] options, bool cubin)
    {
        var pins = new List<System.Runtime.InteropServices.GCHandle>();
        byte* Pin(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s + "\0");
            var h = System.Runtime.InteropServices.GCHandle.Alloc(bytes, System.Runtime.InteropServices.GCHandleType.Pinned);
            pins.Add(h);
            return (byte*)h.AddrOfPinnedObject();
        }
        IntPtr program = IntPtr.Zero;
        try
        {
            var headerTexts = stackalloc byte*[headers.Length];
            var headerNames = stackalloc byte*[headers.Length];
            for (int i = 0; i < headers.Length; i++) { headerTexts[i] = Pin(headers[i].Text); headerNames[i] = Pin(headers[i].Name); }
            Check.Nvrtc(NvrtcApi.nvrtcCreateProgram(&program, Pin(source), Pin(file), headers.Length, headerTexts, headerNames));
            var opts = stackalloc byte*[options.Length];
            for (int i = 0; i < options.Length; i++) opts[i] = Pin(options[i]);
            var result = NvrtcApi.nvrtcCompileProgram(program, options.Length, opts);
            nuint logSize;
            NvrtcApi.nvrtcGetProgramLogSize(program, &logSize);
            string log = "";
            if (logSize > 1)
            {
                var buffer = new byte[(int)logSize];
                fixed (byte* b = buffer) NvrtcApi.nvrtcGetProgramLog(program, b);
                log = Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1).Trim();
            }
            if (result != NvrtcResult.Success)
                throw new CudaException($"NVRTC could not compile kernels/{file} ({string.Join(" ", options)}): {result}\n{log}");
            nuint size;
            if (cubin) Check.Nvrtc(NvrtcApi.nvrtcGetCUBINSize(program, &size));
            else Check.Nvrtc(NvrtcApi.nvrtcGetPTXSize(program, &size));
            var image = new byte[(int)size];
            fixed (byte* p = image)
            {
                if (cubin) Check.Nvrtc(NvrtcApi.nvrtcGetCUBIN(program, p));
                else Check.Nvrtc(NvrtcApi.nvrtcGetPTX(program, p));
            }
            return image;
        }
        finally
        {
            if (program != IntPtr.Zero) NvrtcApi.nvrtcDestroyProgram(&program);
            foreach (var h in pins) h.Free();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_device.Context != IntPtr.Zero)
            {
                _device.MakeCurrent();
                foreach (var m in _modules.Values) CuDriver.cuModuleUnload(m);
            }
            _modules.Clear();
            _functions.Clear();
        }
    }
}
