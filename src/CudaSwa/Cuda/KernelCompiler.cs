using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using CudaSwa.IO;
using CudaSwa.Native;
using CudaSwa.Util;

namespace CudaSwa.Cuda;

/// <summary>
/// Compiles the embedded kernels/*.cu with NVRTC — for a real architecture (CUBIN) or a virtual
/// one (PTX) — and caches the result on disk, keyed by a hash of the source, every header, the
/// options and the NVRTC version (xxHash128: no OpenSSL needed, which GPU hosts may lack).
/// Needs no GPU and no driver. Cache folder: CUDASWA_KERNEL_CACHE, else
/// $XDG_CACHE_HOME/cudaswa/kernels, else ~/.cache/cudaswa/kernels.
/// </summary>
internal sealed unsafe class KernelCompiler
{
    /// <summary>One compiled kernel file.</summary>
    public sealed record Image(string File, byte[] Bytes, bool IsCubin, int Architecture, string Log, bool FromCache, string CachePath);

    public KernelCompiler(string? cacheFolder = null)
    {
        int major, minor;
        Check.Nvrtc(NvrtcApi.nvrtcVersion(&major, &minor));
        NvrtcVersion = $"{major}.{minor}";
        NvrtcVersionNumber = major * 1000 + minor * 10;
        int count;
        Check.Nvrtc(NvrtcApi.nvrtcGetNumSupportedArchs(&count));
        var archs = new int[count];
        fixed (int* p = archs) Check.Nvrtc(NvrtcApi.nvrtcGetSupportedArchs(p));
        SupportedArchitectures = archs;
        CacheFolder = cacheFolder ?? DefaultCacheFolder();
    }

    public string NvrtcVersion { get; }

    /// <summary>1000*major + 10*minor, comparable with the driver's version.</summary>
    public int NvrtcVersionNumber { get; }

    /// <summary>Real architectures NVRTC can write a CUBIN for (e.g. 80, 90).</summary>
    public IReadOnlyList<int> SupportedArchitectures { get; }

    public string CacheFolder { get; }

    public static string DefaultCacheFolder()
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
        var asm = typeof(KernelCompiler).Assembly;
        using var stream = asm.GetManifestResourceStream("kernels/" + file)
            ?? throw new FileNotFoundException($"Kernel source kernels/{file} is not embedded in {asm.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Names of the embedded kernel files (*.cu), sorted.</summary>
    public static IReadOnlyList<string> Files() =>
        typeof(KernelCompiler).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("kernels/", StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n["kernels/".Length..]).OrderBy(n => n, StringComparer.Ordinal).ToList();

    /// <summary>Every embedded header (.cuh), passed to NVRTC for #include.</summary>
    private static (string Name, string Text)[] Headers() =>
        typeof(KernelCompiler).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("kernels/", StringComparison.Ordinal) && n.EndsWith(".cuh", StringComparison.Ordinal))
            .OrderBy(n => n, StringComparer.Ordinal)
            .Select(n => (n["kernels/".Length..], Source(n["kernels/".Length..])))
            .ToArray();

    /// <summary>
    /// The image of one kernel file for architecture <paramref name="arch"/> (e.g. 90): a CUBIN when
    /// <paramref name="cubin"/>, else PTX for compute_<paramref name="arch"/>. From the cache when it
    /// holds one; <paramref name="ignoreCache"/> compiles afresh (a cached image the driver rejected).
    /// </summary>
    public Image Compile(string file, int arch, bool cubin, bool ignoreCache = false)
    {
        if (cubin && !SupportedArchitectures.Contains(arch))
            throw new ArgumentException($"NVRTC {NvrtcVersion} cannot write a CUBIN for sm_{arch}; it knows {string.Join(", ", SupportedArchitectures.Select(a => "sm_" + a))}.", nameof(arch));
        string source = Source(file);
        var headers = Headers();
        string[] options = [cubin ? $"--gpu-architecture=sm_{arch}" : $"--gpu-architecture=compute_{arch}", "--std=c++17", "-DCUDASWA_NVRTC=1"];
        string cached = Path.Combine(CacheFolder, $"{Path.GetFileNameWithoutExtension(file)}-{Hash(source, headers, options)}.{(cubin ? "cubin" : "ptx")}");
        if (!ignoreCache && File.Exists(cached))
        {
            try { return new Image(file, File.ReadAllBytes(cached), cubin, arch, "", true, cached); }
            catch (IOException) { }
        }
        var (bytes, log) = Run(file, source, headers, options, cubin);
        try { AtomicFile.WriteAllBytes(cached, bytes); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the cache is an optimisation */ }
        return new Image(file, bytes, cubin, arch, log, false, cached);
    }

    /// <summary>PTX of one kernel file as NVRTC writes it for a real architecture (for checking parameter lists; not cached).</summary>
    public string Ptx(string file, int arch)
    {
        string[] options = [$"--gpu-architecture=sm_{arch}", "--std=c++17", "-DCUDASWA_NVRTC=1"];
        var (bytes, _) = Run(file, Source(file), Headers(), options, cubin: false);
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    private string Hash(string source, (string Name, string Text)[] headers, string[] options)
    {
        var sb = new StringBuilder(source);
        foreach (var (n, t) in headers) sb.Append('\0').Append(n).Append('\0').Append(t);
        foreach (var o in options) sb.Append('\0').Append(o);
        sb.Append('\0').Append(NvrtcVersion);
        return Convert.ToHexString(XxHash128.Hash(Encoding.UTF8.GetBytes(sb.ToString()))).ToLowerInvariant();
    }

    private static (byte[] Image, string Log) Run(string file, string source, (string Name, string Text)[] headers, string[] options, bool cubin)
    {
        var pins = new List<GCHandle>();
        byte* Pin(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s + "\0");
            var h = GCHandle.Alloc(bytes, GCHandleType.Pinned);
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
            return (image, log);
        }
        finally
        {
            if (program != IntPtr.Zero) NvrtcApi.nvrtcDestroyProgram(&program);
            foreach (var h in pins) h.Free();
        }
    }
}
