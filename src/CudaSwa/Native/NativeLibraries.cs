using System.Reflection;
using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>
/// The one DllImport resolver of this assembly (TorchSharp-style load trace). The bindings name
/// logical libraries ("cuda", "nvrtc", "cublas", "cudnn"); this maps each to versioned sonames
/// and searches, in order: the system loader, CUDA_PATH / CUDA_HOME, LD_LIBRARY_PATH,
/// /usr/local/cuda/lib64 and /usr/local/nvidia/lib64, and the nvidia/*/lib folders of Python
/// site-packages (where PyTorch's pip wheels put cuDNN, cuBLAS and NVRTC). Every attempt is
/// recorded, so "unavailable" comes with the list of places tried.
/// </summary>
public static class NativeLibraries
{
    public const string Cuda = "cuda";
    public const string Nvrtc = "nvrtc";
    public const string Cublas = "cublas";
    public const string Cudnn = "cudnn";

    private static readonly Dictionary<string, string[]> Sonames = new()
    {
        [Cuda] = ["libcuda.so.1", "libcuda.so"],
        [Nvrtc] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
        [Cublas] = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
        [Cudnn] = ["libcudnn.so.9", "libcudnn.so"],
    };

    /// <summary>Sibling libraries to load first from the same folder (loaded lazily by the main one, by soname).</summary>
    private static readonly Dictionary<string, string[]> Companions = new()
    {
        [Nvrtc] = ["libnvrtc-builtins.so*"],
        [Cublas] = ["libcublasLt.so*"],
        [Cudnn] = ["libcudnn_graph.so*", "libcudnn_ops.so*", "libcudnn_cnn.so*", "libcudnn_adv.so*", "libcudnn_heuristic.so*",
                   "libcudnn_engines_precompiled.so*", "libcudnn_engines_runtime_compiled.so*"],
    };

    private static readonly object s_gate = new();
    private static readonly Dictionary<string, (IntPtr Handle, string Path)> s_loaded = new();
    private static readonly Dictionary<string, List<string>> s_trace = new();
    private static bool s_registered;

    /// <summary>Installs the resolver (idempotent; done by every binding's static constructor).</summary>
    public static void Register()
    {
        lock (s_gate)
        {
            if (s_registered) return;
            s_registered = true;
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        Sonames.ContainsKey(name) && TryLoad(name, out var handle, out _) ? handle : IntPtr.Zero;

    /// <summary>Loads a logical library, or says why not.</summary>
    public static bool TryLoad(string logical, out IntPtr handle, out string where)
    {
        lock (s_gate)
        {
            if (s_loaded.TryGetValue(logical, out var hit))
            {
                (handle, where) = hit;
                return true;
            }
            var trace = new List<string>();
            s_trace[logical] = trace;
            handle = IntPtr.Zero;
            where = "";
            if (!OperatingSystem.IsLinux())
            {
                trace.Add($"not Linux ({RuntimeInformation.OSDescription}): CUDA libraries are looked up on Linux only");
                return false;
            }
            foreach (var soname in Sonames[logical])
            {
                if (NativeLibrary.TryLoad(soname, out handle))
                {
                    where = soname + " (system loader)";
                    s_loaded[logical] = (handle, where);
                    trace.Add($"{soname}: loaded by the system loader");
                    return true;
                }
            }
            trace.Add($"{string.Join(" / ", Sonames[logical])} not known to the system loader");
            foreach (var dir in SearchFolders())
            {
                foreach (var soname in Sonames[logical])
                {
                    string file = Path.Combine(dir, soname);
                    if (!File.Exists(file)) continue;
                    foreach (var pattern in Companions.GetValueOrDefault(logical, []))
                        foreach (var companion in SafeGlob(dir, pattern))
                            NativeLibrary.TryLoad(companion, out _);
                    if (NativeLibrary.TryLoad(file, out handle))
                    {
                        where = file;
                        s_loaded[logical] = (handle, where);
                        trace.Add($"{file}: loaded");
                        return true;
                    }
                    trace.Add($"{file}: exists but failed to load (missing dependency or wrong architecture?)");
                }
            }
            var folders = SearchFolders().ToList();
            trace.Add(folders.Count == 0 ? "no CUDA folders to search" : $"not in {string.Join(", ", folders.Take(10))}{(folders.Count > 10 ? ", ..." : "")}");
            return false;
        }
    }

    /// <summary>The recorded attempts for a logical library (for error messages and `cudaswa info`).</summary>
    public static string Trace(string logical)
    {
        lock (s_gate)
            return s_trace.TryGetValue(logical, out var t) ? string.Join("; ", t) : "not tried";
    }

    public static string? LoadedFrom(string logical)
    {
        lock (s_gate)
            return s_loaded.TryGetValue(logical, out var hit) ? hit.Path : null;
    }

    /// <summary>An export of a loaded logical library, or zero (for entry points that differ between versions).</summary>
    public static IntPtr Export(string logical, string symbol) =>
        TryLoad(logical, out var handle, out _) && NativeLibrary.TryGetExport(handle, symbol, out var address) ? address : IntPtr.Zero;

    private static IEnumerable<string> SafeGlob(string dir, string pattern)
    {
        try { return Directory.GetFiles(dir, pattern).OrderBy(f => f, StringComparer.Ordinal); }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    private static List<string>? s_folders;

    private static IEnumerable<string> SearchFolders()
    {
        if (s_folders is not null) return s_folders;
        var dirs = new List<string>();
        void Add(string? d)
        {
            if (string.IsNullOrWhiteSpace(d)) return;
            try
            {
                d = Path.GetFullPath(d);
                if (Directory.Exists(d) && !dirs.Contains(d)) dirs.Add(d);
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { }
        }
        foreach (var v in new[] { "CUDA_PATH", "CUDA_HOME", "CUDA_ROOT" })
        {
            string? root = Environment.GetEnvironmentVariable(v);
            if (root is null) continue;
            Add(Path.Combine(root, "lib64"));
            Add(Path.Combine(root, "lib"));
        }
        foreach (var d in (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':')) Add(d);
        Add("/usr/local/cuda/lib64");
        Add("/usr/local/nvidia/lib64");
        Add("/usr/local/nvidia/lib");
        Add("/usr/lib/x86_64-linux-gnu");
        Add("/usr/lib/wsl/lib");
        foreach (var site in SitePackages())
        {
            string nvidia = Path.Combine(site, "nvidia");
            if (!Directory.Exists(nvidia)) continue;
            try
            {
                // nvidia/<pkg>/lib (CUDA 12 wheels) and nvidia/<pkg>/<sub>/lib, e.g. nvidia/cu13/lib (CUDA 13 wheels).
                foreach (var lib in Directory.EnumerateDirectories(nvidia, "lib", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 3 }))
                    Add(lib);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            Add(Path.Combine(site, "torch", "lib"));
        }
        s_folders = dirs;
        return dirs;
    }

    private static IEnumerable<string> SitePackages()
    {
        var roots = new List<string>();
        string? venv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        string? conda = Environment.GetEnvironmentVariable("CONDA_PREFIX");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        foreach (var prefix in new[] { venv, conda, "/opt/torch/.venv", "/opt/conda", "/usr/local", "/usr", Path.Combine(home, ".local") })
        {
            if (prefix is null) continue;
            string lib = Path.Combine(prefix, "lib");
            if (!Directory.Exists(lib)) continue;
            try
            {
                foreach (var py in Directory.GetDirectories(lib, "python3*"))
                {
                    roots.Add(Path.Combine(py, "site-packages"));
                    roots.Add(Path.Combine(py, "dist-packages"));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        roots.Add("/usr/lib/python3/dist-packages");
        string? extra = Environment.GetEnvironmentVariable("CUDASWA_PYTHON_SITE");
        if (extra is not null) roots.Insert(0, extra);
        return roots.Where(Directory.Exists);
    }

    /// <summary>Copies a NUL-terminated native string.</summary>
    public static unsafe string? PtrToString(byte* p) => p == null ? null : Marshal.PtrToStringUTF8((IntPtr)p);
}
