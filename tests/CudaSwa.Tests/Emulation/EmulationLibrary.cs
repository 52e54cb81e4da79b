using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using CudaSwa.Cuda;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>How the emulated kernels are compiled for the host.</summary>
public enum Rounding
{
    /// <summary>No floating-point contraction: every operation rounds on its own (-ffp-contract=off).</summary>
    Separate,

    /// <summary>
    /// Contraction of a*b+c into one FMA wherever the compiler likes (-ffp-contract=fast -mfma), as
    /// NVRTC's default --fmad=true allows on the GPU: a kernel whose result must be bit-exact has
    /// to pin its rounding with intrinsics, and then gives the same bits both ways.
    /// </summary>
    Fused,
}

/// <summary>
/// The kernels' CPU emulation as one shared library: the unchanged kernels/*.cu (read from the
/// engine's embedded resources, the exact text NVRTC compiles) built as host C++ by clang++-14
/// with cuda_emulation.h, plus the emulation runtime and the stand-in CUDA driver. Built once per
/// distinct input (sources, flags, compiler) into a cache folder under the temp directory, then
/// loaded. <see cref="Launch"/> runs a kernel on host memory with the same typed argument structs
/// the engine launches with.
/// </summary>
internal sealed unsafe partial class EmulationLibrary
{
    private static readonly Dictionary<Rounding, Lazy<(EmulationLibrary? Library, string Reason)>> s_libraries = new()
    {
        [Rounding.Separate] = new(() => Build(Rounding.Separate)),
        [Rounding.Fused] = new(() => Build(Rounding.Fused)),
    };

    private readonly delegate* unmanaged<int> _count;
    private readonly delegate* unmanaged<int, byte*> _file, _name;
    private readonly delegate* unmanaged<int, int> _paramCount;
    private readonly delegate* unmanaged<int, int, int*, int*, int*, int*, void> _param;
    private readonly delegate* unmanaged<int, uint, uint, uint, uint, uint, uint, void**, byte*, int, int> _launch;
    private readonly delegate* unmanaged<int, int> _setTimeout;

    private EmulationLibrary(string path, Rounding rounding)
    {
        Path = path;
        Rounding = rounding;
        Handle = NativeLibrary.Load(path);
        _count = (delegate* unmanaged<int>)NativeLibrary.GetExport(Handle, "cudaswa_emu_kernel_count");
        _file = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(Handle, "cudaswa_emu_kernel_file");
        _name = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(Handle, "cudaswa_emu_kernel_name");
        _paramCount = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(Handle, "cudaswa_emu_param_count");
        _param = (delegate* unmanaged<int, int, int*, int*, int*, int*, void>)NativeLibrary.GetExport(Handle, "cudaswa_emu_param");
        _launch = (delegate* unmanaged<int, uint, uint, uint, uint, uint, uint, void**, byte*, int, int>)NativeLibrary.GetExport(Handle, "cudaswa_emu_launch");
        _setTimeout = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(Handle, "cudaswa_emu_set_timeout");
        var kernels = new List<EmulatedKernel>();
        for (int k = 0; k < _count(); k++)
        {
            var parameters = new List<EmulatedParameter>();
            for (int p = 0; p < _paramCount(k); p++)
            {
                int offset, size, isFloat, isPointer;
                _param(k, p, &offset, &size, &isFloat, &isPointer);
                parameters.Add(new EmulatedParameter(offset, size, isFloat != 0, isPointer != 0));
            }
            kernels.Add(new EmulatedKernel(k, Marshal.PtrToStringUTF8((IntPtr)_file(k))!, Marshal.PtrToStringUTF8((IntPtr)_name(k))!, parameters));
        }
        Kernels = kernels;
    }

    public string Path { get; }
    public Rounding Rounding { get; }
    public IntPtr Handle { get; }

    /// <summary>Every kernel built into the library, with the parameter layout of its C++ signature.</summary>
    public IReadOnlyList<EmulatedKernel> Kernels { get; }

    /// <summary>The library for a rounding mode, or the test is ignored with the reason (no clang++-14).</summary>
    public static EmulationLibrary Require(Rounding rounding = Rounding.Separate)
    {
        if (rounding == Rounding.Fused && !System.Runtime.Intrinsics.X86.Fma.IsSupported)
            Assert.Ignore("This CPU has no FMA instructions: the fused-rounding emulation cannot run here.");
        var (library, reason) = s_libraries[rounding].Value;
        if (library is null)
        {
            if (reason.StartsWith("tool:", StringComparison.Ordinal)) Toolchain.MissingTool("clang++-14", reason["tool:".Length..].Trim());
            if (reason.StartsWith("ignore:", StringComparison.Ordinal)) Assert.Ignore(reason["ignore:".Length..].Trim());
            Assert.Fail(reason);
        }
        return library!;
    }

    /// <summary>Barriers give up after <paramref name="seconds"/> (to provoke a deadlock report quickly) until disposed.</summary>
    public IDisposable ShortTimeout(int seconds)
    {
        int previous = _setTimeout(seconds);
        return new Restore(() => _setTimeout(previous));
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>Runs one kernel on host memory (pointers in the argument struct are host addresses); throws with the emulation's message on failure.</summary>
    public void Launch<TArgs>(KernelSpec<TArgs> kernel, uint grid, uint block, in TArgs args) where TArgs : unmanaged
    {
        var k = Kernels.FirstOrDefault(e => e.Name == kernel.Name)
            ?? throw new InvalidOperationException($"kernel {kernel.Name} was not built into the emulation");
        if (k.Parameters.Count != kernel.Parameters.Count || k.Parameters.Where((p, i) => p.Offset != kernel.Parameters[i].Offset || p.Size != kernel.Parameters[i].Size).Any())
            throw new InvalidOperationException($"kernel {kernel.Name}: its C++ signature and its declaration in Kernels disagree");
        TArgs copy = args;
        void** pointers = stackalloc void*[Math.Max(1, kernel.Parameters.Count)];
        for (int i = 0; i < kernel.Parameters.Count; i++) pointers[i] = (byte*)&copy + kernel.Parameters[i].Offset;
        var error = stackalloc byte[2048];
        if (_launch(k.Index, grid, 1, 1, block, 1, 1, pointers, error, 2048) != 0)
            throw new EmulationException(Marshal.PtrToStringUTF8((IntPtr)error) ?? "emulated launch failed");
    }

    // ---------------------------------------------------------------- building

    /// <summary>Builds of earlier sources (same rounding) not touched for a day are removed.</summary>
    private static void RemoveStale(string current)
    {
        string parent = System.IO.Path.GetDirectoryName(current)!;
        string prefix = System.IO.Path.GetFileName(current).Split('-')[0] + "-";
        foreach (var old in Directory.GetDirectories(parent, prefix + "*"))
        {
            if (old == current || Directory.GetLastWriteTimeUtc(old) > DateTime.UtcNow.AddDays(-1)) continue;
            try { Directory.Delete(old, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    [GeneratedRegex(@"extern\s+""C""\s+__global__\s+void\s+(\w+)\s*\(")]
    private static partial Regex KernelPattern();

    private static readonly string[] RuntimeSources = ["emulation_runtime.cpp", "stand_in_driver.cpp", "stand_in_cudnn.cpp", "stand_in_cublas.cpp"];
    private const string SelfTest = "emulation_selftest.cu";
    private static readonly string[] Headers = ["cuda_emulation.h", "emulation_registry.h", "emulation_runtime.h", "stand_in.h"];

    /// <summary>
    /// The names the engine's library search knows, each a link to the one library (the loader
    /// maps a file once, so the driver, cuBLAS and cuDNN share one state): CUDA 11, as the NVRTC
    /// 11.8 the stand-in runs with, so the engine's one-CUDA-major rule holds.
    /// </summary>
    public static readonly string[] VendorNames = ["libcublas.so.11", "libcublasLt.so.11", "libcudnn.so.9"];

    /// <summary>The folder holding <see cref="VendorNames"/> (CUDASWA_CUBLAS / CUDASWA_CUDNN point into it).</summary>
    public string VendorFolder => System.IO.Path.Combine(System.IO.Path.GetDirectoryName(Path)!, "vendor");

    /// <summary>The kernel files and headers exactly as embedded in the engine (what NVRTC compiles).</summary>
    private static IEnumerable<(string Name, string Text)> KernelSources() =>
        typeof(KernelCompiler).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("kernels/", StringComparison.Ordinal))
            .Select(n => n["kernels/".Length..]).OrderBy(n => n, StringComparer.Ordinal)
            .Select(n => (n, KernelCompiler.Source(n)));

    private static (EmulationLibrary? Library, string Reason) Build(Rounding rounding)
    {
        string? compiler = Toolchain.ClangXX();
        if (compiler is null) return (null, "tool: clang++-14 is not installed: the kernels' CPU emulation is built with it (apt-get install clang-14).");
        string emulationDir = System.IO.Path.Combine(AppContext.BaseDirectory, "Emulation");
        if (!File.Exists(System.IO.Path.Combine(emulationDir, "cuda_emulation.h")))
            return (null, $"ignore: the emulation sources are not next to the tests ({emulationDir}).");
        string[] common = ["-std=c++20", "-O2", "-fPIC", "-pthread", "-fvisibility=hidden", "-g0", "-Wall", "-Wno-unused-function", "-Wno-unused-variable"];
        // fmaf must be one instruction, not libm's slow exact emulation: -mfma wherever the CPU has FMA
        // (contraction of separate multiplies and adds stays off unless asked for).
        string[] fma = System.Runtime.Intrinsics.X86.Fma.IsSupported ? ["-mfma"] : [];
        string[] rounding_ = rounding == Rounding.Fused ? ["-ffp-contract=fast", "-mfma"] : ["-ffp-contract=off", .. fma];

        var sources = KernelSources().ToList();
        var emulation = Headers.Concat(RuntimeSources).Append(SelfTest).Select(f => (f, File.ReadAllText(System.IO.Path.Combine(emulationDir, f)))).ToList();
        var hash = new XxHash128();
        foreach (var (name, text) in sources.Concat(emulation)) hash.Append(Encoding.UTF8.GetBytes(name + "\0" + text + "\0"));
        hash.Append(Encoding.UTF8.GetBytes(compiler + "\0" + string.Join(" ", common.Concat(rounding_))));
        string key = Convert.ToHexString(hash.GetCurrentHash()).ToLowerInvariant()[..20];
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cudaswa-emulation", $"{rounding.ToString().ToLowerInvariant()}-{key}");
        string library = System.IO.Path.Combine(dir, "libcudaswa_emulation.so");
        if (File.Exists(library)) return (new EmulationLibrary(library, rounding), "");

        string work = dir + ".build-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(work);
        try
        {
            foreach (var (name, text) in sources.Concat(emulation)) File.WriteAllText(System.IO.Path.Combine(work, name), text);
            var units = new List<(string Source, bool Kernel)>();
            foreach (var (name, text) in sources.Where(s => s.Name.EndsWith(".cu", StringComparison.Ordinal)).Append(emulation.Single(e => e.f == SelfTest)))
            {
                // One translation unit per kernel file: the file itself, then a registration per kernel it defines.
                var unit = new StringBuilder($"#include \"{name}\"\n");
                foreach (Match m in KernelPattern().Matches(text)) unit.Append($"EMU_KERNEL(\"{name}\", {m.Groups[1].Value})\n");
                string path = System.IO.Path.Combine(work, name + ".emu.cpp");
                File.WriteAllText(path, unit.ToString());
                units.Add((path, true));
            }
            units.AddRange(RuntimeSources.Select(s => (System.IO.Path.Combine(work, s), false)));
            var results = units.AsParallel().WithDegreeOfParallelism(Math.Max(1, Environment.ProcessorCount)).Select(u =>
            {
                var args = new List<string>(common);
                args.AddRange(rounding_);
                if (u.Kernel) args.AddRange(["-include", "cuda_emulation.h"]);
                args.AddRange(["-I", work, "-c", u.Source, "-o", u.Source + ".o"]);
                var (code, output) = Toolchain.Run(compiler, args, work);
                return (u.Source, code, output);
            }).ToList();
            var failed = results.Where(r => r.code != 0).ToList();
            if (failed.Count > 0)
                return (null, "The kernels' CPU emulation did not compile:\n" + string.Join("\n", failed.Select(f => $"--- {System.IO.Path.GetFileName(f.Source)}\n{f.output}")));
            string linked = System.IO.Path.Combine(work, "libcudaswa_emulation.so");
            var (linkCode, linkOutput) = Toolchain.Run(compiler, ["-shared", "-pthread", "-o", linked, .. units.Select(u => u.Source + ".o")], work);
            if (linkCode != 0) return (null, "The kernels' CPU emulation did not link:\n" + linkOutput);
            File.WriteAllText(System.IO.Path.Combine(work, "build.log"), string.Join("\n", results.Select(r => $"{System.IO.Path.GetFileName(r.Source)}: {r.output}")));
            Directory.CreateDirectory(System.IO.Path.Combine(work, "vendor"));
            foreach (var name in VendorNames) File.CreateSymbolicLink(System.IO.Path.Combine(work, "vendor", name), "../libcudaswa_emulation.so");
            try { Directory.Move(work, dir); }
            catch (IOException) when (File.Exists(library)) { } // another process built the same library first
            RemoveStale(dir);
            return (new EmulationLibrary(library, rounding), "");
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}

public sealed record EmulatedParameter(int Offset, int Size, bool IsFloat, bool IsPointer);

public sealed record EmulatedKernel(int Index, string File, string Name, IReadOnlyList<EmulatedParameter> Parameters);

/// <summary>An emulated launch that broke a rule (an absent warp lane, a deadlock, an invalid configuration).</summary>
public sealed class EmulationException(string message) : Exception(message);
