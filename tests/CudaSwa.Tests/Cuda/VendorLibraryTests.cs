using System.Text.Json;
using CudaSwa.Cuda;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// TF32 accuracy and cuDNN's algorithm choices across processes, on a real GPU ("cuda", category
/// Gpu) and on the stand-in CUDA stack ("StandIn": its TF32 rounding and its algorithm model).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.Devices))]
[NonParallelizable]
public class VendorLibraryTests(string backend)
{
    private bool OnStandIn => backend == BackendFixtures.StandInName;

    /// <summary>A fresh CUDA backend of this fixture's kind (the caller disposes it).</summary>
    private CudaBackend Open(bool allowTf32, string? cacheFolder = null)
    {
        if (OnStandIn) return StandIn.CreateBackend(allowTf32, cacheFolder);
        BackendFixtures.RequireCuda();
        return CudaBackend.Create(0, allowTf32, null, vendorLibraries: true, cacheFolder: cacheFolder);
    }

    /// <summary>What a `cudaswa` child process needs to open the same kind of device.</summary>
    private Dictionary<string, string> ChildEnvironment() => OnStandIn ? StandIn.Environment() : [];

    /// <summary>
    /// TF32 on (cuDNN tensor-op math, cuBLAS TF32): inputs are rounded to 10-bit mantissas, so each
    /// product can be off by about 2^-10 of its size. Stated tolerance per output:
    /// |y - y_ref| &lt;= 2e-3 * sum |w||x| (the same sum with absolute values), against float64 references.
    /// </summary>
    [Test]
    public void Tf32ConvolutionAndLinearStayWithinTheirStatedTolerance()
    {
        var rng = new Fresh();
        using var tf32 = Open(allowTf32: true);
        Assert.That(tf32.AllowTf32, Is.True);
        int n = 8, c = 64, h = 16, k = 64;
        var x = rng.Floats(n * c * h * h, -2, 2);
        var w = rng.Floats(k * c * 9, -0.5f, 0.5f);
        var tx = tf32.AllocateTensor(TensorShape.Nchw(n, c, h, h));
        var tw = tf32.AllocateTensor(TensorShape.Nchw(k, c, 3, 3));
        var ty = tf32.AllocateTensor(TensorShape.Nchw(n, k, h, h));
        tf32.Upload<float>(x, tx);
        tf32.Upload<float>(w, tw);
        tf32.ConvolutionForward(tx, tw, ty, new ConvSpec(1, 1));
        var reference = Reference.Conv(Close.ToDouble(x), n, c, h, h, Close.ToDouble(w), k, 3, 1, 1);
        var magnitude = Reference.Conv(x.Select(v => (double)Math.Abs(v)).ToArray(), n, c, h, h, w.Select(v => (double)Math.Abs(v)).ToArray(), k, 3, 1, 1);
        var got = tf32.ToArray(ty);
        for (int i = 0; i < got.Length; i++)
            Assert.That(Math.Abs(got[i] - reference[i]), Is.LessThanOrEqualTo(2e-3 * magnitude[i] + 1e-6), $"TF32 convolution output {i} ({rng})");

        int rows = 64, inF = 512, outF = 100;
        var xl = rng.Floats(rows * inF);
        var wl = rng.Floats(outF * inF, -0.2f, 0.2f);
        var bl = rng.Floats(outF);
        var txl = tf32.AllocateTensor(new TensorShape(rows, inF));
        var twl = tf32.AllocateTensor(new TensorShape(outF, inF));
        var tbl = tf32.AllocateTensor(new TensorShape(outF));
        var tyl = tf32.AllocateTensor(new TensorShape(rows, outF));
        tf32.Upload<float>(xl, txl);
        tf32.Upload<float>(wl, twl);
        tf32.Upload<float>(bl, tbl);
        tf32.LinearForward(txl, twl, tbl, tyl);
        var refl = Reference.Linear(Close.ToDouble(xl), rows, inF, Close.ToDouble(wl), Close.ToDouble(bl), outF);
        var magl = Reference.Linear(xl.Select(v => (double)Math.Abs(v)).ToArray(), rows, inF, wl.Select(v => (double)Math.Abs(v)).ToArray(), new double[outF], outF);
        var gotl = tf32.ToArray(tyl);
        for (int i = 0; i < gotl.Length; i++)
            Assert.That(Math.Abs(gotl[i] - refl[i]), Is.LessThanOrEqualTo(2e-3 * magl[i] + 1e-6), $"TF32 linear output {i} ({rng})");
    }

    /// <summary>
    /// The cuDNN algorithm choices a process writes are read back by the next one (no search, the
    /// same algorithms and math types), and an entry naming a non-deterministic algorithm — a stale
    /// file from another policy — or a damaged line is ignored and the shape searched again.
    /// </summary>
    [Test]
    public void CudnnChoicesAreReadBackByASecondProcessAndStaleEntriesAreSearchedAgain()
    {
        using (Open(allowTf32: false)) { } // ignored with the reason when there is no such device
        string cache = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"cudnn-cache-{Guid.NewGuid():N}");
        Directory.CreateDirectory(cache);
        try
        {
            // 1. Another process chooses the algorithms for resnet8 at batch 16 and writes them down.
            string json = Path.Combine(cache, "prepared.json");
            var env = ChildEnvironment();
            env["CUDASWA_KERNEL_CACHE"] = cache;
            var prepared = CudaswaProcess.Run(["bench", "--device", "cuda", "--prepare-only", "--models", "resnet8", "--batch", "16", "--json", json], env);
            Assert.That(prepared.ExitCode, Is.Zero, prepared.Output);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var theirs = doc.RootElement.GetProperty("convolution_algorithms").EnumerateArray()
                .Select(e => (e.GetProperty("shape").GetString(), e.GetProperty("forward").GetString(), e.GetProperty("backward_data").GetString(), e.GetProperty("backward_filter").GetString()))
                .OrderBy(t => t.Item1).ToList();
            Assert.That(theirs, Is.Not.Empty, "the other process planned convolutions");

            // 2. This process reads them: every shape from the file, the same algorithms.
            using (var b = Open(false, cache))
            using (var net = ModelZoo.Create("resnet8", 10, b, 16, 1))
            {
                var ours = b.ConvolutionChoices;
                Assert.That(ours.All(c => c.FromCache), Is.True, "no shape searched again");
                Assert.That(b.Notices, Is.Empty, "a cached fallback is not announced again");
                Assert.That(ours.Select(c => (c.Shape, c.Forward, c.BackwardData, c.BackwardFilter)).OrderBy(t => t.Shape).ToList(), Is.EqualTo(theirs));
            }

            // 3. Stale and damaged entries: every backward-data entry rewritten to the non-deterministic ALGO_0, plus a line that does not parse.
            string file = Directory.GetFiles(cache, "cudnn-algorithms-*.txt").Single();
            var lines = File.ReadAllLines(file);
            var stale = lines.Take(1).Concat(lines.Skip(1).Select(l => l.Split(' ')).Select(f => $"{f[0]} {f[1]} 0:{f[2].Split(':')[1]} {f[3]}")).Append("garbage line");
            File.WriteAllLines(file, stale);
            using (var b = Open(false, cache))
            using (var net = ModelZoo.Create("resnet8", 10, b, 16, 1))
            {
                var ours = b.ConvolutionChoices;
                Assert.That(ours.Any(c => c.FromCache), Is.False, "stale entries are not used");
                Assert.That(ours.Select(c => c.Forward), Is.All.AnyOf("IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM"));
                // ALGO_1 unless cuDNN withholds it for a shape, and then a named deterministic fallback.
                foreach (var c in ours)
                {
                    if (c.BackwardData != "ALGO_1") Assert.That(c.Note, Does.Contain("backward data").And.Contain(c.BackwardData), c.Shape);
                    if (c.BackwardFilter != "ALGO_1") Assert.That(c.Note, Does.Contain("backward filter").And.Contain(c.BackwardFilter), c.Shape);
                }
                if (OnStandIn)
                    Assert.That(ours.Where(c => c.Shape.Contains(" 8x8 ->") && c.Shape.Contains("kernel 3x3, stride 1")).Select(c => c.BackwardData),
                        Is.Not.Empty.And.All.EqualTo("WINOGRAD_NONFUSED"), "the stand-in withholds ALGO_1 on 3x3 stride-1 8x8 maps: the fallback is taken");
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
