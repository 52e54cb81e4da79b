using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace CudaSwa.Native;

/// <summary>
/// Which NVRTC, cuBLAS (with its cublasLt) and cuDNN this process uses: ONE CUDA major for all
/// three, never newer than the driver supports. Candidates come from the places
/// <see cref="NativeLibraries"/> searches; NVRTC's and cuBLAS's major is in their soname
/// (libnvrtc.so.13, libcublas.so.12), cuDNN's is asked of the library (cudnnGetCudartVersion:
/// the same libcudnn.so.9 name ships for CUDA 11, 12 and 13). The newest major that has all
/// three wins; cuBLAS and cublasLt are loaded before cuDNN, which opens cublasLt by soname for
/// the legacy convolution API. Chosen once per process: the bindings are bound to these files.
/// </summary>
internal sealed partial class ToolkitSelection
{
    /// <summary>A library file found, with the CUDA major it belongs to (null when it could not be told).</summary>
    public sealed record Candidate(string Logical, string Path, int? CudaMajor, string Version, string Note);

    /// <summary>A library chosen and loaded (<paramref name="Handle"/> is the loaded file).</summary>
    public sealed record Choice(string Logical, string Path, int CudaMajor, string Version, IntPtr Handle);

    private static readonly object s_gate = new();
    private static ToolkitSelection? s_vendor;   // NVRTC + cuBLAS + cuDNN
    private static ToolkitSelection? s_kernels;  // NVRTC alone (kernels without cuDNN/cuBLAS, or compiling with no GPU)
    private static readonly Dictionary<string, IntPtr> s_handles = new();
    private static readonly Dictionary<string, Candidate> s_probes = new(StringComparer.Ordinal);

    private ToolkitSelection(int? driverVersion, IReadOnlyList<Candidate> candidates)
    {
        DriverVersion = driverVersion;
        Candidates = candidates;
    }

    /// <summary>The driver's CUDA version (1000*major + 10*minor), when a driver was loaded.</summary>
    public int? DriverVersion { get; }

    /// <summary>The CUDA major every chosen library belongs to.</summary>
    public int CudaMajor { get; private set; }

    public Choice? Nvrtc { get; private set; }
    public Choice? Cublas { get; private set; }
    public Choice? Cudnn { get; private set; }

    /// <summary>Every file considered, chosen or not, with the reason it was passed over.</summary>
    public IReadOnlyList<Candidate> Candidates { get; }

    /// <summary>Mismatches that did not stop the selection (e.g. an NVRTC bound earlier in the process).</summary>
    public List<string> Warnings { get; } = [];

    /// <summary>The libraries NVRTC-only work uses, chosen on first need (no driver required).</summary>
    public static ToolkitSelection ForKernels(int? driverVersion)
    {
        lock (s_gate)
        {
            if (s_vendor is not null) return s_vendor;
            if (s_kernels is not null) return s_kernels;
            var candidates = Find(NativeLibraries.Nvrtc);
            var selection = new ToolkitSelection(driverVersion, candidates);
            var (major, picks, why) = Choose(candidates, driverVersion, needVendor: false, boundNvrtcMajor: null);
            if (major is null) throw new DllNotFoundException($"NVRTC was not found: {why}");
            selection.CudaMajor = major.Value;
            selection.Nvrtc = selection.Load(picks[NativeLibraries.Nvrtc]);
            s_kernels = selection;
            return selection;
        }
    }

    /// <summary>NVRTC, cuBLAS and cuDNN of one CUDA major no newer than the driver; throws <see cref="DllNotFoundException"/> saying what was found where.</summary>
    public static ToolkitSelection ForDriver(int driverVersion)
    {
        lock (s_gate)
        {
            if (s_vendor is not null) return s_vendor;
            var candidates = Find(NativeLibraries.Nvrtc).Concat(Find(NativeLibraries.Cublas)).Concat(Find(NativeLibraries.Cudnn)).ToList();
            int? bound = s_kernels?.CudaMajor;
            var selection = new ToolkitSelection(driverVersion, candidates);
            var (major, picks, why) = Choose(candidates, driverVersion, needVendor: true, boundNvrtcMajor: bound);
            if (major is null) throw new DllNotFoundException($"no CUDA version has NVRTC, cuBLAS and cuDNN here that the driver (CUDA {FormatVersion(driverVersion)}) can run: {why}");
            selection.CudaMajor = major.Value;
            // cuBLAS (after cublasLt, its companion) before cuDNN: cuDNN 9 opens cublasLt by soname.
            selection.Cublas = selection.Load(picks[NativeLibraries.Cublas]);
            if (s_kernels is not null)
            {
                selection.Nvrtc = s_kernels.Nvrtc;
                if (s_kernels.CudaMajor != major)
                    selection.Warnings.Add($"NVRTC {s_kernels.Nvrtc!.Version} (CUDA {s_kernels.CudaMajor}) was loaded earlier in this process; cuBLAS and cuDNN are CUDA {major}");
            }
            else selection.Nvrtc = selection.Load(picks[NativeLibraries.Nvrtc]);
            selection.Cudnn = selection.Load(picks[NativeLibraries.Cudnn]);
            s_vendor = selection;
            return selection;
        }
    }

    /// <summary>
    /// cuBLAS and cuDNN from exact files, beside the process's NVRTC, for one backend only (not the
    /// process's choice): how the tests open the CUDA backend over stand-in libraries in a process
    /// that may also hold a real GPU's. Their CUDA major must be the NVRTC's.
    /// </summary>
    public static ToolkitSelection ForFiles(int driverVersion, string cublas, string cudnn)
    {
        lock (s_gate)
        {
            var kernels = ForKernels(driverVersion);
            var candidates = new List<Candidate> { Describe(NativeLibraries.Cublas, cublas, "named explicitly"), Describe(NativeLibraries.Cudnn, cudnn, "named explicitly") };
            foreach (var c in candidates)
                if (c.CudaMajor != kernels.CudaMajor)
                    throw new DllNotFoundException($"{c.Path} is not usable with NVRTC of CUDA {kernels.CudaMajor}: " +
                        (c.CudaMajor is int m ? $"it belongs to CUDA {m}" : c.Note));
            var selection = new ToolkitSelection(driverVersion, candidates) { CudaMajor = kernels.CudaMajor, Nvrtc = kernels.Nvrtc };
            selection.Cublas = selection.Load(candidates[0]);
            selection.Cudnn = selection.Load(candidates[1]);
            return selection;
        }
    }

    /// <summary>Every NVRTC, cuBLAS and cuDNN file found, nothing chosen (for `cudaswa info` when CUDA is unavailable).</summary>
    public static IReadOnlyList<Candidate> Survey()
    {
        lock (s_gate)
            return [.. Find(NativeLibraries.Nvrtc), .. Find(NativeLibraries.Cublas), .. Find(NativeLibraries.Cudnn)];
    }

    /// <summary>The selection in force, if any (for `cudaswa info`).</summary>
    public static ToolkitSelection? Current
    {
        get { lock (s_gate) return s_vendor ?? s_kernels; }
    }

    /// <summary>The resolver's answer for a binding: the chosen file, choosing NVRTC alone if nothing was chosen yet.</summary>
    internal static IntPtr HandleFor(string logical)
    {
        lock (s_gate)
        {
            if (s_handles.TryGetValue(logical, out var h)) return h;
            if (logical == NativeLibraries.Nvrtc)
            {
                try { ForKernels(null); } catch (DllNotFoundException) { return IntPtr.Zero; }
                return s_handles.GetValueOrDefault(logical);
            }
            return IntPtr.Zero; // cuBLAS and cuDNN are tables read from the chosen files (CublasApi, CudnnApi), never resolved by name
        }
    }

    /// <summary>
    /// The choice itself, separate from the file system so it can be tested: the newest CUDA major
    /// no newer than the driver that has every library needed (NVRTC; with vendor libraries also
    /// cuBLAS and a cuDNN built for that major). Where NVRTC is already bound, its major is
    /// preferred. Returns the major and the first candidate of each library in search order, or
    /// null and what is missing for each major.
    /// </summary>
    public static (int? Major, Dictionary<string, Candidate> Picks, string Why) Choose(IReadOnlyList<Candidate> candidates, int? driverVersion,
        bool needVendor, int? boundNvrtcMajor)
    {
        string[] needed = needVendor ? [NativeLibraries.Nvrtc, NativeLibraries.Cublas, NativeLibraries.Cudnn] : [NativeLibraries.Nvrtc];
        int maxMajor = driverVersion is int d ? d / 1000 : int.MaxValue;
        var usable = candidates.Where(c => c.CudaMajor is int m && m <= maxMajor).ToList();
        var majors = usable.Select(c => c.CudaMajor!.Value).Distinct().OrderByDescending(m => m == boundNvrtcMajor).ThenByDescending(m => m).ToList();
        var reasons = new List<string>();
        foreach (int m in majors)
        {
            var picks = new Dictionary<string, Candidate>();
            foreach (var lib in needed)
            {
                var hit = usable.FirstOrDefault(c => c.Logical == lib && c.CudaMajor == m);
                if (hit is not null) picks[lib] = hit;
            }
            if (picks.Count == needed.Length) return (m, picks, "");
            reasons.Add($"CUDA {m} lacks {string.Join(" and ", needed.Where(l => !picks.ContainsKey(l)).Select(DisplayName))}");
        }
        foreach (var lib in needed)
            if (!candidates.Any(c => c.Logical == lib)) reasons.Add($"no {DisplayName(lib)} found");
        var tooNew = candidates.Where(c => c.CudaMajor > maxMajor).ToList();
        if (tooNew.Count > 0) reasons.Add($"newer than the driver allows: {string.Join(", ", tooNew.Select(c => $"{c.Path} (CUDA {c.CudaMajor})"))}");
        var unknown = candidates.Where(c => c.CudaMajor is null).ToList();
        if (unknown.Count > 0) reasons.Add($"unusable: {string.Join(", ", unknown.Select(c => $"{c.Path} ({c.Note})"))}");
        return (null, [], string.Join("; ", reasons));
    }

    public static string DisplayName(string logical) => logical switch
    {
        NativeLibraries.Nvrtc => "NVRTC",
        NativeLibraries.Cublas => "cuBLAS",
        NativeLibraries.Cudnn => "cuDNN",
        _ => logical,
    };

    public static string FormatVersion(int v) => $"{v / 1000}.{v % 1000 / 10}";

    /// <summary>Lines for `cudaswa info`: each library chosen (path, version, CUDA major) and every other file seen.</summary>
    public IEnumerable<string> Describe()
    {
        yield return $"CUDA libraries: CUDA {CudaMajor}" + (DriverVersion is int d ? $" (driver supports up to CUDA {FormatVersion(d)})" : "");
        foreach (var c in new[] { Nvrtc, Cublas, Cudnn })
            if (c is not null) yield return $"  {DisplayName(c.Logical),-7} {c.Version}: {c.Path}";
        foreach (var c in Candidates)
            if (c.Path != Nvrtc?.Path && c.Path != Cublas?.Path && c.Path != Cudnn?.Path)
                yield return $"  not used: {c.Path} ({(c.CudaMajor is int m ? $"CUDA {m}" : "CUDA version unknown")}{(c.Note.Length > 0 ? ", " + c.Note : "")})";
        foreach (var w in Warnings) yield return $"  mismatch: {w}";
    }

    /// <summary>The public summary of this selection.</summary>
    public CudaLibraries Summary()
    {
        CudaLibrary? Public(Choice? c) => c is null ? null : new CudaLibrary(DisplayName(c.Logical), c.Path, c.Version);
        return new CudaLibraries(DriverVersion, CudaMajor, Public(Nvrtc), Public(Cublas), Public(Cudnn), [.. Warnings], [.. Describe()]);
    }

    // ---------------------------------------------------------------- finding and loading

    [GeneratedRegex(@"^lib(nvrtc|cublas)\.so\.(\d+)(\.\d+)?$")]
    private static partial Regex VersionedSoname();

    private static readonly string[] NvrtcNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"];
    private static readonly string[] CublasNames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"];

    /// <summary>Every file for one library, in search order (an explicit file in its variable is the only one).</summary>
    private static List<Candidate> Find(string logical)
    {
        var found = new List<Candidate>();
        string variable = NativeLibraries.OverrideVariable(logical);
        string? explicitFile = Environment.GetEnvironmentVariable(variable);
        IEnumerable<string> files;
        if (!string.IsNullOrEmpty(explicitFile))
        {
            if (!File.Exists(explicitFile))
                return [new Candidate(logical, explicitFile, null, "", $"named by {variable} but no such file")];
            files = [explicitFile];
        }
        else
        {
            string[] names = logical switch
            {
                NativeLibraries.Nvrtc => NvrtcNames,
                NativeLibraries.Cublas => CublasNames,
                _ => ["libcudnn.so.9"],
            };
            files = NativeLibraries.SearchFolders(includePython: true)
                .SelectMany(dir => names.Select(n => Path.Combine(dir, n)))
                .Where(File.Exists);
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            string real = RealPath(file);
            if (!seen.Add(real)) continue;
            found.Add(Describe(logical, file, explicitFile is not null ? $"from {variable}" : ""));
        }
        return found;
    }

    private static string RealPath(string file)
    {
        try { return new FileInfo(file).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(file); }
        catch (IOException) { return Path.GetFullPath(file); }
    }

    /// <summary>A candidate with its CUDA major: from the soname for NVRTC and cuBLAS, asked of the library for cuDNN.</summary>
    private static Candidate Describe(string logical, string file, string note)
    {
        if (logical == NativeLibraries.Cudnn) return ProbeCudnn(file, note);
        string name = Path.GetFileName(file);
        var m = VersionedSoname().Match(name);
        if (!m.Success)
        {
            // An explicit file under another name (e.g. libnvrtc.so.11.8.89): its target's soname decides.
            m = VersionedSoname().Match(Path.GetFileName(RealPath(file)));
        }
        if (!m.Success) return new Candidate(logical, file, null, "", (note + " file name does not say its CUDA version").Trim());
        int major = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        if (logical == NativeLibraries.Cublas && !File.Exists(Path.Combine(Path.GetDirectoryName(file)!, $"libcublasLt.so.{major}")))
            return new Candidate(logical, file, null, "", (note + $" no libcublasLt.so.{major} next to it").Trim());
        return new Candidate(logical, file, major, "", note);
    }

    /// <summary>Loads libcudnn.so.9 alone (not its sub-libraries) to ask which CUDA it was built for, then lets it go.</summary>
    private static unsafe Candidate ProbeCudnn(string file, string note)
    {
        if (s_probes.TryGetValue(file, out var cached)) return cached;
        Candidate result;
        bool loaded = NativeLibrary.TryLoad(file, out var handle);
        if (!loaded)
        {
            // A build whose main library links its sub-libraries: load them from its folder first.
            lock (NativeLibraries.Gate)
                loaded = NativeLibraries.TryLoadFile(NativeLibraries.Cudnn, file, NativeLibraries.StartTrace("cudnn-probe:" + file), out handle, remember: false);
        }
        if (!loaded)
            result = new Candidate(NativeLibraries.Cudnn, file, null, "", (note + " could not be loaded").Trim());
        else
        {
            try
            {
                if (NativeLibrary.TryGetExport(handle, "cudnnGetCudartVersion", out var cudart) && NativeLibrary.TryGetExport(handle, "cudnnGetVersion", out var version))
                {
                    nuint rt = ((delegate* unmanaged<nuint>)cudart)();
                    nuint v = ((delegate* unmanaged<nuint>)version)();
                    result = new Candidate(NativeLibraries.Cudnn, file, (int)rt / 1000, FormatCudnn((long)v), note);
                }
                else result = new Candidate(NativeLibraries.Cudnn, file, null, "", (note + " not a cuDNN library").Trim());
            }
            finally
            {
                NativeLibrary.Free(handle); // one reference less; a chosen cuDNN holds its own
            }
        }
        s_probes[file] = result;
        return result;
    }

    public static string FormatCudnn(long v) => v >= 90000 ? $"{v / 10000}.{v % 10000 / 100}.{v % 100}" : $"{v / 1000}.{v % 1000 / 100}.{v % 100}";

    /// <summary>Loads a chosen file (companions first) for the resolver, with the version it reports.</summary>
    private unsafe Choice Load(Candidate c)
    {
        IntPtr handle;
        lock (NativeLibraries.Gate)
        {
            var trace = NativeLibraries.StartTrace(c.Logical);
            if (!NativeLibraries.TryLoadFile(c.Logical, c.Path, trace, out handle))
                throw new DllNotFoundException($"{DisplayName(c.Logical)} at {c.Path} could not be loaded ({string.Join("; ", trace)})");
        }
        if (c.Logical == NativeLibraries.Nvrtc) s_handles[c.Logical] = handle; // the one library bound through the resolver
        string version = c.Version;
        if (c.Logical == NativeLibraries.Nvrtc && NativeLibrary.TryGetExport(handle, "nvrtcVersion", out var f))
        {
            int major, minor;
            ((delegate* unmanaged<int*, int*, int>)f)(&major, &minor);
            version = $"{major}.{minor}";
        }
        else if (c.Logical == NativeLibraries.Cublas && NativeLibrary.TryGetExport(handle, "cublasGetProperty", out var g))
        {
            int major, minor, patch;
            var get = (delegate* unmanaged<int, int*, int>)g;
            get(0, &major); get(1, &minor); get(2, &patch);
            version = $"{major}.{minor}.{patch}";
        }
        return new Choice(c.Logical, c.Path, c.CudaMajor!.Value, version, handle);
    }
}
