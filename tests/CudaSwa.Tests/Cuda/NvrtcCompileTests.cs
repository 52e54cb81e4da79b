using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using System.Text;
using CudaSwa.Cuda;
using CudaSwa.Native;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// NVIDIA's own runtime compiler, run with no GPU: every kernels/*.cu is compiled through the
/// engine's NvrtcApi bindings, its library loader (ToolkitSelection) and KernelCompiler (cache
/// included) for sm_80 (A100) and sm_90 (H100/H200) — no errors, no warnings, a CUDA CUBIN with
/// every declared kernel in it, a cache hit the second time — and the parameter lists in NVRTC's
/// own PTX match the kernel table the launches use. NVRTC 11.8 comes from Debian's non-free
/// packages (tests/tools/fetch-nvrtc.sh, run by .ci/run); without it these tests are ignored.
/// </summary>
[Category("Nvrtc")]
public class NvrtcCompileTests
{
    private static readonly int[] Architectures = [80, 90];
    private string _cache = "";
    private string _nvrtc = "";
    private KernelCompiler _compiler = null!;

    [OneTimeSetUp]
    public void LoadNvrtc()
    {
        _nvrtc = Toolchain.Nvrtc(out string reason) ?? "";
        if (_nvrtc.Length == 0) Toolchain.MissingTool("NVRTC", reason);
        _cache = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"nvrtc-cache-{Guid.NewGuid():N}");
        _compiler = new KernelCompiler(_cache);
    }

    [OneTimeTearDown]
    public void RemoveCache()
    {
        if (_cache.Length > 0 && Directory.Exists(_cache)) Directory.Delete(_cache, recursive: true);
    }

    private static IEnumerable<TestCaseData> Cases() =>
        KernelCompiler.Files().SelectMany(f => Architectures.Select(a => new TestCaseData(f, a).SetName($"NvrtcCompilesToCubin({f}, sm_{a})")));

    [Test]
    public void NvrtcIsLoadedThroughTheEnginesOwnLoader()
    {
        var selection = ToolkitSelection.Current;
        Assert.That(selection?.Nvrtc, Is.Not.Null, "ToolkitSelection chose no NVRTC");
        Assert.That(selection!.Nvrtc!.Path, Is.EqualTo(_nvrtc), "the NVRTC the tests were given (CUDASWA_NVRTC, artifacts/nvrtc, or the one found)");
        Assert.That(_compiler.NvrtcVersion, Is.EqualTo(selection.Nvrtc.Version), "NVRTC reports the version the loader recorded");
        Assert.That(selection.CudaMajor, Is.EqualTo(int.Parse(_compiler.NvrtcVersion.Split('.')[0])), "CUDA major of the chosen NVRTC");
        Assert.That(_compiler.SupportedArchitectures, Does.Contain(80).And.Contain(90), $"NVRTC {_compiler.NvrtcVersion} targets sm_80 and sm_90");
    }

    [TestCaseSource(nameof(Cases))]
    public void NvrtcCompilesToCubin(string file, int arch)
    {
        var first = _compiler.Compile(file, arch, cubin: true);
        Assert.That(first.FromCache, Is.False, "a fresh cache folder: compiled now");
        Assert.That(first.Log, Is.Empty, $"NVRTC printed diagnostics for {file} (sm_{arch}); kernels must compile without warnings");
        var elf = first.Bytes;
        Assert.That(elf.Length, Is.GreaterThan(64), "a CUBIN");
        Assert.That(elf[..4], Is.EqualTo(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }), "ELF magic");
        Assert.That(BitConverter.ToUInt16(elf, 18), Is.EqualTo(190), "ELF machine EM_CUDA (190)");
        string text = Encoding.ASCII.GetString(elf);
        foreach (var k in Kernels.All.Where(k => k.File == file))
            Assert.That(text, Does.Contain(k.Name + "\0"), $"kernel {k.Name} is in the CUBIN");
        Assert.That(File.Exists(first.CachePath), Is.True, "written to the kernel cache");

        var second = _compiler.Compile(file, arch, cubin: true);
        Assert.That(second.FromCache, Is.True, "the second load is a cache hit");
        Assert.That(second.Bytes, Is.EqualTo(first.Bytes), "the cached image is the compiled one");
        Assert.That(second.CachePath, Is.EqualTo(first.CachePath));
    }

    [Test]
    public void NvrtcPtxParametersMatchTheKernelTable()
    {
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in KernelCompiler.Files())
            foreach (var (name, parameters) in KernelCompileTests.PtxEntries(_compiler.Ptx(file, 90)))
                entries[file + ":" + name] = parameters;
        KernelCompileTests.CheckTableAgainst(entries, $"PTX of NVRTC {_compiler.NvrtcVersion}");
    }

    [Test]
    public void NvrtcPtxForAVirtualArchitectureIsCachedSeparately()
    {
        var ptx = _compiler.Compile("optim.cu", 80, cubin: false);
        string text = Encoding.UTF8.GetString(ptx.Bytes);
        Assert.That(text, Does.Contain(".target sm_80").And.Contain(".entry average_update"), "PTX for compute_80");
        var cubin = _compiler.Compile("optim.cu", 80, cubin: true);
        Assert.That(cubin.CachePath, Is.Not.EqualTo(ptx.CachePath), "CUBIN and PTX have separate cache entries");
        Assert.That(_compiler.Compile("optim.cu", 80, cubin: false).FromCache, Is.True);
    }

    [Test]
    public void NvrtcRecompilesWhenTheCachedImageIsDamaged()
    {
        var good = _compiler.Compile("pooling.cu", 90, cubin: true);
        File.WriteAllBytes(good.CachePath, [1, 2, 3]);
        var damaged = _compiler.Compile("pooling.cu", 90, cubin: true);
        Assert.That(damaged.FromCache, Is.True, "the cache is trusted on read (the driver's load decides)...");
        var fresh = _compiler.Compile("pooling.cu", 90, cubin: true, ignoreCache: true);
        Assert.That(fresh.FromCache, Is.False, "...and a rejected image is compiled afresh");
        Assert.That(fresh.Bytes, Is.EqualTo(good.Bytes));
        Assert.That(File.ReadAllBytes(good.CachePath), Is.EqualTo(good.Bytes), "the cache entry is replaced");
    }
}
