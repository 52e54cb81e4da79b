using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>
/// Where the CUDA libraries come from (TorchSharp-style load trace). The bindings name logical
/// libraries ("cuda", "nvrtc", "cublas", "cudnn"); the one DllImport resolver of this assembly
/// hands NVRTC, cuBLAS and cuDNN the files <see cref="ToolkitSelection"/> chose — one CUDA major
/// for all three, no newer than the driver (cuBLAS and cuDNN are then read as tables of entry
/// points from those files, NVRTC through the resolver) — and the driver is looked up here. Places searched,
/// in order: an explicit file (CUDASWA_LIBCUDA, CUDASWA_NVRTC, CUDASWA_CUBLAS, CUDASWA_CUDNN),
/// the folders in CUDASWA_CUDA_LIBS, CUDA_PATH / CUDA_HOME, LD_LIBRARY_PATH, /usr/local/cuda,
/// /usr/local/nvidia, the site-packages of the Python interpreters found (asked, not guessed:
/// PyTorch's pip wheels keep the libraries in nvidia/&lt;lib&gt;/lib for CUDA 12 and nvidia/cu13/lib
/// for CUDA 13), the distribution's library folder, and finally the system loader by soname.
/// Every attempt is recorded, so "unavailable" comes with the list of places tried.
/// </summary>
internal static class NativeLibraries
{
    public const string Cuda = "cuda";
    public const string Nvrtc = "nvrtc";
    public const string Cublas = "cublas";
    public const string Cudnn = "cudnn";

    /// <summary>The environment variable that names an exact file for a logical library.</summary>
    public static string OverrideVariable(string logical) => logical switch
    {
        Cuda => "CUDASWA_LIBCUDA",
        Nvrtc => "CUDASWA_NVRTC",
        Cublas => "CUDASWA_CUBLAS",
        Cudnn => "CUDASWA_CUDNN",
        _ => throw new ArgumentOutOfRangeException(nameof(logical), logical, "not a CUDA library name"),
    };

    /// <summary>Sibling libraries loaded first from the same folder (the main one opens them lazily, by soname).</summary>
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

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Nvrtc) return IntPtr.Zero;
        // A binding used before any selection (e.g. NVRTC compiling kernels with no GPU at all)
        // gets that library alone; ToolkitSelection keeps later choices consistent with it.
        return ToolkitSelection.HandleFor(name);
    }

    /// <summary>Loads the CUDA driver (libcuda.so.1), or says why not.</summary>
    public static bool TryLoad(string logical, out IntPtr handle, out string where)
    {
        if (logical != Cuda) throw new ArgumentException("Only the driver is loaded by name; NVRTC, cuBLAS and cuDNN go through ToolkitSelection.", nameof(logical));
        lock (s_gate)
        {
            if (s_loaded.TryGetValue(logical, out var hit))
            {
                (handle, where) = hit;
                return true;
            }
            var trace = StartTrace(logical);
            handle = IntPtr.Zero;
            where = "";
            if (!OperatingSystem.IsLinux())
            {
                trace.Add($"not Linux ({RuntimeInformation.OSDescription}): CUDA libraries are looked up on Linux only");
                return false;
            }
            string? explicitFile = Environment.GetEnvironmentVariable(OverrideVariable(Cuda));
            if (!string.IsNullOrEmpty(explicitFile))
            {
                // An explicit file is the only candidate: a wrong path must not fall back silently.
                bool ok = TryLoadFile(logical, explicitFile, trace, out handle);
                if (ok) where = explicitFile + " (from " + OverrideVariable(Cuda) + ")";
                return ok;
            }
            // The driver is installed system-wide: the loader's own lookup (ld.so.cache) comes first, as for every CUDA program.
            if (NativeLibrary.TryLoad("libcuda.so.1", out handle))
            {
                where = "libcuda.so.1 (system loader)";
                s_loaded[logical] = (handle, where);
                trace.Add("libcuda.so.1: loaded by the system loader");
                return true;
            }
            trace.Add("libcuda.so.1: not known to the system loader");
            var folders = SearchFolders(includePython: false);
            foreach (var file in folders.Select(d => System.IO.Path.Combine(d, "libcuda.so.1")).Where(File.Exists))
            {
                if (TryLoadFile(logical, file, trace, out handle))
                {
                    where = file;
                    return true;
                }
            }
            trace.Add($"not in {Describe(folders)}");
            return false;
        }
    }

    /// <summary>Loads a library from an exact path (companions from its folder first); throws with the reason when it cannot.</summary>
    public static IntPtr LoadFile(string logical, string path)
    {
        lock (s_gate)
        {
            var trace = StartTrace(logical + ":" + path);
            if (TryLoadFile(logical, path, trace, out var handle, remember: false)) return handle;
            throw new DllNotFoundException($"{path} could not be loaded ({string.Join("; ", trace)})");
        }
    }

    /// <summary>Loads one file after its companions; records the attempt. Caller holds s_gate.</summary>
    internal static bool TryLoadFile(string logical, string file, List<string> trace, out IntPtr handle, bool remember = true, bool companions = true)
    {
        handle = IntPtr.Zero;
        if (!File.Exists(file))
        {
            trace.Add($"{file}: no such file");
            return false;
        }
        if (companions)
        {
            string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file))!;
            foreach (var pattern in Companions.GetValueOrDefault(logical, []))
                foreach (var companion in SafeGlob(dir, pattern))
                    NativeLibrary.TryLoad(companion, out _);
        }
        try
        {
            handle = NativeLibrary.Load(file);
        }
        catch (DllNotFoundException e)
        {
            trace.Add($"{file}: exists but failed to load ({FirstLine(e.Message)})");
            return false;
        }
        catch (BadImageFormatException e)
        {
            trace.Add($"{file}: not a library for this machine ({FirstLine(e.Message)})");
            return false;
        }
        trace.Add($"{file}: loaded");
        if (remember) s_loaded[logical] = (handle, file);
        return true;
    }

    internal static List<string> StartTrace(string key)
    {
        var trace = new List<string>();
        s_trace[key] = trace;
        return trace;
    }

    internal static object Gate => s_gate;

    /// <summary>The recorded attempts for a logical library (for error messages and `cudaswa info`).</summary>
    public static string Trace(string logical)
    {
        lock (s_gate)
            return s_trace.TryGetValue(logical, out var t) ? string.Join("; ", t) : "not tried";
    }

    private static IEnumerable<string> SafeGlob(string dir, string pattern)
    {
        try { return Directory.GetFiles(dir, pattern).OrderBy(f => f, StringComparer.Ordinal); }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    internal static string FirstLine(string s)
    {
        int n = s.IndexOf('\n');
        return (n < 0 ? s : s[..n]).Trim();
    }

    internal static string Describe(IReadOnlyList<string> folders) =>
        folders.Count == 0 ? "no folders" : string.Join(", ", folders.Take(12)) + (folders.Count > 12 ? $", ... ({folders.Count} folders)" : "");

    private static List<string>? s_folders, s_foldersWithPython;

    /// <summary>The folders searched, in order (computed once per process).</summary>
    internal static IReadOnlyList<string> SearchFolders(bool includePython)
    {
        lock (s_gate)
        {
            if (includePython && s_foldersWithPython is not null) return s_foldersWithPython;
            if (!includePython && s_folders is not null) return s_folders;
            var dirs = new List<string>();
            void Add(string? d)
            {
                if (string.IsNullOrWhiteSpace(d)) return;
                try
                {
                    d = System.IO.Path.GetFullPath(d);
                    if (Directory.Exists(d) && !dirs.Contains(d)) dirs.Add(d);
                }
                catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { }
            }
            foreach (var d in (Environment.GetEnvironmentVariable("CUDASWA_CUDA_LIBS") ?? "").Split(':')) Add(d);
            foreach (var v in new[] { "CUDA_PATH", "CUDA_HOME", "CUDA_ROOT" })
            {
                string? root = Environment.GetEnvironmentVariable(v);
                if (root is null) continue;
                Add(System.IO.Path.Combine(root, "lib64"));
                Add(System.IO.Path.Combine(root, "lib"));
            }
            foreach (var d in (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':')) Add(d);
            Add("/usr/local/cuda/lib64");
            Add("/usr/local/nvidia/lib64");
            Add("/usr/local/nvidia/lib");
            if (includePython)
            {
                foreach (var site in PythonSitePackages())
                {
                    string nvidia = System.IO.Path.Combine(site, "nvidia");
                    if (!Directory.Exists(nvidia)) continue;
                    // CUDA 13 wheels: nvidia/cu13/lib (cuBLAS, NVRTC, runtime) and nvidia/cudnn/lib;
                    // CUDA 12 wheels: nvidia/<package>/lib.
                    try
                    {
                        foreach (var lib in Directory.EnumerateDirectories(nvidia, "lib", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 2 })
                                     .OrderBy(d => d.Contains("/cu1", StringComparison.Ordinal) ? 0 : 1).ThenBy(d => d, StringComparer.Ordinal))
                            Add(lib);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
                    Add(System.IO.Path.Combine(site, "torch", "lib"));
                }
            }
            Add("/usr/lib/x86_64-linux-gnu");
            Add("/usr/lib64");
            Add("/usr/lib/wsl/lib");
            if (includePython) s_foldersWithPython = dirs;
            else s_folders = dirs;
            return dirs;
        }
    }

    /// <summary>
    /// site-packages of the Python interpreters at hand, asked of each interpreter (so a venv's
    /// own layout is found wherever it lives): CUDASWA_PYTHON, $VIRTUAL_ENV, $CONDA_PREFIX, then
    /// python3 on the PATH; the usual prefixes are added as guesses.
    /// </summary>
    private static List<string> PythonSitePackages()
    {
        var roots = new List<string>();
        string? site = Environment.GetEnvironmentVariable("CUDASWA_PYTHON_SITE");
        if (!string.IsNullOrEmpty(site)) roots.Add(site);
        var interpreters = new List<string>();
        string? explicitPython = Environment.GetEnvironmentVariable("CUDASWA_PYTHON");
        if (!string.IsNullOrEmpty(explicitPython)) interpreters.Add(explicitPython);
        foreach (var prefix in new[] { Environment.GetEnvironmentVariable("VIRTUAL_ENV"), Environment.GetEnvironmentVariable("CONDA_PREFIX") })
            if (!string.IsNullOrEmpty(prefix)) interpreters.Add(System.IO.Path.Combine(prefix, "bin", "python3"));
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            if (dir.Length > 0 && File.Exists(System.IO.Path.Combine(dir, "python3"))) { interpreters.Add(System.IO.Path.Combine(dir, "python3")); break; }
        foreach (var python in interpreters.Distinct()) roots.AddRange(AskPython(python));
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        foreach (var prefix in new[] { "/opt/conda", "/usr/local", "/usr", System.IO.Path.Combine(home, ".local") })
        {
            string lib = System.IO.Path.Combine(prefix, "lib");
            if (!Directory.Exists(lib)) continue;
            try
            {
                foreach (var py in Directory.GetDirectories(lib, "python3*"))
                {
                    roots.Add(System.IO.Path.Combine(py, "site-packages"));
                    roots.Add(System.IO.Path.Combine(py, "dist-packages"));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return roots.Where(Directory.Exists).Distinct().ToList();
    }

    private static IEnumerable<string> AskPython(string python)
    {
        if (!File.Exists(python)) return [];
        try
        {
            var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("import site,sys\nfor p in site.getsitepackages()+[site.getusersitepackages()]: print(p)");
            using var p = Process.Start(psi);
            if (p is null) return [];
            var output = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(5000))
            {
                try { p.Kill(); } catch (InvalidOperationException) { }
                return [];
            }
            return output.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return [];
        }
    }

    /// <summary>Copies a NUL-terminated native string.</summary>
    public static unsafe string? PtrToString(byte* p) => p == null ? null : Marshal.PtrToStringUTF8((IntPtr)p);
}
