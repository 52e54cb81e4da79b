using System.Diagnostics;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// Every kernels/*.cu compiles to PTX with clang-14 and no CUDA SDK (kernels/clang_prelude.cuh
/// stands in for the CUDA headers), so kernel compile errors show on machines without a GPU.
/// Ignored, with the reason, where clang-14 or the kernels folder is absent (e.g. the GPU bundle).
/// </summary>
public class KernelCompileTests
{
    private static string? KernelsFolder()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "CudaSwa.sln")) && Directory.Exists(Path.Combine(dir.FullName, "kernels")))
                return Path.Combine(dir.FullName, "kernels");
        return null;
    }

    private static IEnumerable<string> Kernels()
    {
        // Discovered from the source tree at test-discovery time; the embedded list is checked below.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "CudaSwa.sln")))
                return Directory.GetFiles(Path.Combine(dir.FullName, "kernels"), "*.cu").Select(Path.GetFileName).OrderBy(f => f)!;
        return ["(no source tree)"];
    }

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToPtxWithClang14(string file)
    {
        string? kernels = KernelsFolder();
        if (kernels is null || !File.Exists(Path.Combine(kernels, file))) Assert.Ignore("kernels/ is not next to the tests (e.g. a GPU bundle): nothing to compile.");
        string? clang = FindClang();
        if (clang is null) Assert.Ignore("clang-14 is not installed: the kernel compile check needs it (apt-get install clang-14).");
        var (exitCode, errors, ptx) = CompileToPtx(clang!, kernels!, Path.Combine(kernels!, file));
        Assert.That(exitCode, Is.Zero, $"clang-14 failed on kernels/{file}:\n{errors}");
        Assert.That(ptx, Does.Contain(".entry"), "the PTX has kernel entry points");
    }

    /// <summary>
    /// Every kernel launch in CudaBackend.cs passes the arguments its kernel declares — same count,
    /// same widths (pointer/long 64-bit, int 32-bit, float, double) — read from the PTX clang-14
    /// produces. A mismatch would silently corrupt memory on the GPU, so it is caught here, without one.
    /// </summary>
    [Test]
    public void EveryLaunchPassesTheArgumentsItsKernelDeclares()
    {
        string? kernels = KernelsFolder();
        if (kernels is null) Assert.Ignore("kernels/ is not next to the tests (e.g. a GPU bundle).");
        string? clang = FindClang();
        if (clang is null) Assert.Ignore("clang-14 is not installed: the check reads the PTX it produces.");
        string repo = Path.GetDirectoryName(kernels)!;
        var declared = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var cu in Directory.GetFiles(kernels!, "*.cu"))
        {
            var (exitCode, errors, text) = CompileToPtx(clang!, kernels!, cu);
            Assert.That(exitCode, Is.Zero, $"clang-14 failed on {cu}:\n{errors}");
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(text, @"\.entry (\w+)\((.*?)\)", System.Text.RegularExpressions.RegexOptions.Singleline))
                declared[m.Groups[1].Value] = System.Text.RegularExpressions.Regex.Matches(m.Groups[2].Value, @"\.param \.(\w+)")
                    .Select(t => t.Groups[1].Value switch { "u64" or "b64" or "s64" => "64", "u32" or "b32" or "s32" => "32", var other => other }).ToList();
        }
        string backend = File.ReadAllText(Path.Combine(repo, "src", "CudaSwa", "Cuda", "CudaBackend.cs"));
        var launches = System.Text.RegularExpressions.Regex.Matches(backend,
            @"new KernelArgs\([^)]*\)((?:\s*\.\w+\([^;]*?\))*?)\s*\.Launch\(K\(""([\w.]+)"", ""(\w+)""\)", System.Text.RegularExpressions.RegexOptions.Singleline);
        Assert.That(launches, Is.Not.Empty, "no launches found: did the launch style change?");
        var width = new Dictionary<string, string> { ["Ptr"] = "64", ["I64"] = "64", ["I32"] = "32", ["U32"] = "32", ["F32"] = "f32", ["F64"] = "f64" };
        foreach (System.Text.RegularExpressions.Match l in launches)
        {
            string kernel = l.Groups[3].Value;
            var passed = System.Text.RegularExpressions.Regex.Matches(l.Groups[1].Value, @"\.(Ptr|I64|I32|U32|F32|F64)\(").Select(c => width[c.Groups[1].Value]).ToList();
            Assert.That(declared.ContainsKey(kernel), Is.True, $"kernel {kernel} ({l.Groups[2].Value}) has no PTX entry");
            Assert.That(passed, Is.EqualTo(declared[kernel]), $"arguments of the {kernel} launch vs its declaration");
        }
    }

    [Test]
    public void EveryKernelFileIsEmbeddedInTheEngine()
    {
        string? kernels = KernelsFolder();
        if (kernels is null) Assert.Ignore("kernels/ is not next to the tests (e.g. a GPU bundle).");
        var embedded = typeof(CudaSwa.Cuda.KernelLibrary).Assembly.GetManifestResourceNames();
        foreach (var f in Directory.GetFiles(kernels!, "*.cu").Concat(Directory.GetFiles(kernels!, "*.cuh")))
        {
            string name = Path.GetFileName(f);
            if (name == "clang_prelude.cuh") Assert.That(embedded, Does.Not.Contain("kernels/" + name), "the clang prelude must not reach NVRTC");
            else Assert.That(embedded, Does.Contain("kernels/" + name));
        }
    }

    /// <summary>
    /// clang-14 in CUDA device-only mode: sm_80 PTX, no CUDA headers
    /// (clang_prelude.cuh stands in for them). Returns the exit code, the diagnostics and the PTX text.
    /// </summary>
    private static (int ExitCode, string Errors, string Ptx) CompileToPtx(string clang, string kernels, string source)
    {
        string ptx = Path.Combine(Path.GetTempPath(), $"cudaswa-{Guid.NewGuid():N}.ptx");
        var psi = new ProcessStartInfo(clang) { RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = Path.GetDirectoryName(kernels)! };
        foreach (var a in new[] { "-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_80", "-nocudainc", "-nocudalib", "-Xclang", "-target-feature",
                     "-Xclang", "+ptx70", "-std=c++17", "-O3", "-include", "kernels/clang_prelude.cuh", "-Ikernels", "-S", source, "-o", ptx })
            psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            string errors = p.StandardError.ReadToEnd();
            p.WaitForExit();
            stdout.Wait();
            return (p.ExitCode, errors, p.ExitCode == 0 ? File.ReadAllText(ptx) : "");
        }
        finally
        {
            File.Delete(ptx);
        }
    }

    private static string? FindClang()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            string c = Path.Combine(dir, "clang-14");
            if (File.Exists(c)) return c;
        }
        return null;
    }
}
