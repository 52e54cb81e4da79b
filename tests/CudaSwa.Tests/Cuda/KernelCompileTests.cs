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
        string ptx = Path.Combine(Path.GetTempPath(), $"cudaswa-{Guid.NewGuid():N}.ptx");
        var psi = new ProcessStartInfo(clang!)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = Path.GetDirectoryName(kernels)!,
        };
        foreach (var a in new[] { "-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_80", "-nocudainc", "-nocudalib", "-Xclang", "-target-feature",
                     "-Xclang", "+ptx70", "-std=c++17", "-O3", "-include", "kernels/clang_prelude.cuh", "-Ikernels", "-S", Path.Combine("kernels", file), "-o", ptx })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        try
        {
            Assert.That(p.ExitCode, Is.Zero, $"clang-14 failed on kernels/{file}:\n{err}");
            string text = File.ReadAllText(ptx);
            Assert.That(text, Does.Contain(".entry"), "the PTX has kernel entry points");
        }
        finally
        {
            File.Delete(ptx);
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
