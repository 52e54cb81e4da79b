using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using System.Text.RegularExpressions;
using CudaSwa.Cuda;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// Every kernels/*.cu compiles to PTX with clang-14 and no CUDA SDK (kernels/clang_prelude.cuh
/// stands in for the CUDA headers), and the kernel table the engine launches from (Kernels.All)
/// agrees with what the compiler declares: every kernel present, same parameter count, widths and
/// kinds. Ignored, with the reason, where clang-14 or the kernels folder is absent (e.g. the GPU bundle).
/// </summary>
[Category("KernelCompile")]
public partial class KernelCompileTests
{
    private static string? KernelsFolder()
    {
        string? root = Toolchain.RepoRoot();
        return root is not null && Directory.Exists(Path.Combine(root, "kernels")) ? Path.Combine(root, "kernels") : null;
    }

    private static IEnumerable<string> KernelFiles() => KernelCompiler.Files();

    [TestCaseSource(nameof(KernelFiles))]
    public void CompilesToPtxWithClang14(string file)
    {
        string kernels = KernelsFolder() ?? IgnoreBecause("kernels/ is not next to the tests (e.g. a GPU bundle): nothing to compile.");
        string clang = Toolchain.Clang() ?? MissingClang("the kernel compile check needs it");
        var (exitCode, errors, ptx) = CompileToPtx(clang, kernels, Path.Combine(kernels, file));
        Assert.That(exitCode, Is.Zero, $"clang-14 failed on kernels/{file}:\n{errors}");
        Assert.That(ptx, Does.Contain(".entry"), "the PTX has kernel entry points");
    }

    /// <summary>
    /// The declared argument struct of every kernel matches the PTX clang-14 writes for it: same
    /// count, and per parameter the same size and integer/float kind. (Launches pass these structs,
    /// so with this test a wrong argument list cannot reach a GPU.)
    /// </summary>
    [Test]
    public void EveryKernelDeclarationMatchesItsPtx()
    {
        string kernels = KernelsFolder() ?? IgnoreBecause("kernels/ is not next to the tests (e.g. a GPU bundle).");
        string clang = Toolchain.Clang() ?? MissingClang("the check reads the PTX it produces");
        var declared = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in KernelCompiler.Files())
        {
            var (exitCode, errors, ptx) = CompileToPtx(clang, kernels, Path.Combine(kernels, file));
            Assert.That(exitCode, Is.Zero, $"clang-14 failed on {file}:\n{errors}");
            foreach (var (name, parameters) in PtxEntries(ptx)) declared[file + ":" + name] = parameters;
        }
        CheckTableAgainst(declared, "clang-14 PTX");
    }

    /// <summary>Compares Kernels.All with PTX entry signatures (file:name → "i8 i8 f4 ..."); both directions.</summary>
    internal static void CheckTableAgainst(IReadOnlyDictionary<string, string> ptxEntries, string source)
    {
        var table = Kernels.All.ToDictionary(k => k.File + ":" + k.Name, k => Signature(k));
        Assert.Multiple(() =>
        {
            foreach (var (key, signature) in table)
            {
                Assert.That(ptxEntries.ContainsKey(key), Is.True, $"kernel {key} is declared in Kernels but has no entry in the {source}");
                if (ptxEntries.TryGetValue(key, out var actual))
                    Assert.That(signature, Is.EqualTo(actual), $"parameters of {key}: Kernels declares vs the {source}");
            }
            foreach (var key in ptxEntries.Keys)
                Assert.That(table.ContainsKey(key), Is.True, $"kernel {key} is in the {source} but not declared in Kernels (it could never be launched)");
        });
    }

    /// <summary>A declaration as "i8 i8 f4 ...": integer or float, and the size in bytes, per parameter.</summary>
    internal static string Signature(KernelSpec k) => string.Join(" ", k.Parameters.Select(p => $"{(p.IsFloat ? "f" : "i")}{p.Size}"));

    /// <summary>Every .entry of a PTX text with its parameters in the same notation as <see cref="Signature"/>.</summary>
    internal static IEnumerable<(string Name, string Parameters)> PtxEntries(string ptx)
    {
        foreach (Match m in EntryPattern().Matches(ptx))
        {
            var parameters = ParamPattern().Matches(m.Groups[2].Value).Select(t => t.Groups[1].Value switch
            {
                "u64" or "b64" or "s64" => "i8",
                "u32" or "b32" or "s32" => "i4",
                "f32" => "f4",
                "f64" => "f8",
                var other => "?" + other,
            });
            yield return (m.Groups[1].Value, string.Join(" ", parameters));
        }
    }

    [GeneratedRegex(@"\.entry (\w+)\s*\((.*?)\)", RegexOptions.Singleline)]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"\.param \.(\w+)")]
    private static partial Regex ParamPattern();

    [Test]
    public void EveryKernelFileIsEmbeddedInTheEngine()
    {
        string kernels = KernelsFolder() ?? IgnoreBecause("kernels/ is not next to the tests (e.g. a GPU bundle).");
        var embedded = typeof(KernelCompiler).Assembly.GetManifestResourceNames();
        foreach (var f in Directory.GetFiles(kernels, "*.cu").Concat(Directory.GetFiles(kernels, "*.cuh")))
        {
            string name = Path.GetFileName(f);
            if (name == "clang_prelude.cuh") Assert.That(embedded, Does.Not.Contain("kernels/" + name), "the clang prelude must not reach NVRTC");
            else Assert.That(embedded, Does.Contain("kernels/" + name));
        }
    }

    private static string MissingClang(string why)
    {
        Toolchain.MissingTool("clang-14", $"clang-14 is not installed: {why} (apt-get install clang-14).");
        return "";
    }

    private static string IgnoreBecause(string reason)
    {
        Assert.Ignore(reason);
        return "";
    }

    /// <summary>
    /// clang-14 in CUDA device-only mode: sm_80 PTX, no CUDA headers
    /// (clang_prelude.cuh stands in for them). Returns the exit code, the diagnostics and the PTX text.
    /// </summary>
    internal static (int ExitCode, string Errors, string Ptx) CompileToPtx(string clang, string kernels, string source)
    {
        string ptx = Path.Combine(Path.GetTempPath(), $"cudaswa-{Guid.NewGuid():N}.ptx");
        try
        {
            var (exitCode, output) = Toolchain.Run(clang, ["-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_80", "-nocudainc", "-nocudalib",
                "-Xclang", "-target-feature", "-Xclang", "+ptx70", "-std=c++17", "-O3", "-include", "kernels/clang_prelude.cuh", "-Ikernels",
                "-S", source, "-o", ptx], Path.GetDirectoryName(kernels)!);
            return (exitCode, output, exitCode == 0 ? File.ReadAllText(ptx) : "");
        }
        finally
        {
            File.Delete(ptx);
        }
    }
}
