using System.Diagnostics;
using System.Text.Json;
using CudaSwa.Cuda;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>What only a real GPU with cuDNN and cuBLAS can answer: TF32 accuracy and cuDNN's algorithm choices across processes.</summary>
[Category("Gpu")]
public class GpuOnlyTests
{
    /// <summary>
    /// TF32 on (cuDNN tensor-op math, cuBLAS TF32): inputs are rounded to 10-bit mantissas, so each
    /// product can be off by about 2^-10 of its size. Stated tolerance per output:
    /// |y - y_ref| &lt;= 2e-3 * sum |w||x| (the same sum with absolute values), against float64 references.
    /// </summary>
    [Test]
    public void Tf32ConvolutionAndLinearStayWithinTheirStatedTolerance()
    {
        BackendFixtures.RequireCuda();
        var rng = new Fresh();
        using var tf32 = CudaBackend.Create(0, allowTf32: true);
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
    /// same algorithms), and an entry naming an algorithm outside the allowed, stable set — a stale
    /// file from another policy — or a damaged line is ignored and the shape searched again.
    /// </summary>
    [Test]
    public void CudnnChoicesAreReadBackByASecondProcessAndStaleEntriesAreSearchedAgain()
    {
        BackendFixtures.RequireCuda();
        string cache = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"cudnn-cache-{Guid.NewGuid():N}");
        Directory.CreateDirectory(cache);
        try
        {
            // 1. Another process chooses the algorithms for resnet8 at batch 16 and writes them down.
            string json = Path.Combine(cache, "prepared.json");
            var psi = new ProcessStartInfo(Support.Toolchain.DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "cudaswa.dll"), "bench", "--device", "cuda", "--prepare-only", "--models", "resnet8", "--batch", "16", "--json", json })
                psi.ArgumentList.Add(a);
            psi.Environment["CUDASWA_KERNEL_CACHE"] = cache;
            using (var p = Process.Start(psi)!)
            {
                string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.That(p.ExitCode, Is.Zero, output);
            }
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var theirs = doc.RootElement.GetProperty("convolution_algorithms").EnumerateArray()
                .Select(e => (e.GetProperty("shape").GetString(), e.GetProperty("forward").GetString(), e.GetProperty("backward_data").GetString(), e.GetProperty("backward_filter").GetString()))
                .OrderBy(t => t.Item1).ToList();
            Assert.That(theirs, Is.Not.Empty, "the other process planned convolutions");

            // 2. This process reads them: every shape from the file, the same algorithms.
            using (var b = CudaBackend.Create(0, false, null, vendorLibraries: true, cacheFolder: cache))
            using (var net = ModelZoo.Create("resnet8", 10, b, 16, 1))
            {
                var ours = b.ConvolutionChoices;
                Assert.That(ours.All(c => c.FromCache), Is.True, "no shape searched again");
                Assert.That(ours.Select(c => (c.Shape, c.Forward, c.BackwardData, c.BackwardFilter)).OrderBy(t => t.Shape).ToList(), Is.EqualTo(theirs));
            }

            // 3. Stale and damaged entries: every entry rewritten to forward FFT (4), plus a line that does not parse.
            string file = Directory.GetFiles(cache, "cudnn-algorithms-*.txt").Single();
            var stale = File.ReadAllLines(file).Where(l => !l.StartsWith('#')).Select(l => l.Split(' ')).Select(f => $"{f[0]} 4 {f[2]} {f[3]}").Append("garbage line");
            File.WriteAllLines(file, stale);
            using (var b = CudaBackend.Create(0, false, null, vendorLibraries: true, cacheFolder: cache))
            using (var net = ModelZoo.Create("resnet8", 10, b, 16, 1))
            {
                var ours = b.ConvolutionChoices;
                Assert.That(ours.Any(c => c.FromCache), Is.False, "stale entries are not used");
                Assert.That(ours.Select(c => c.Forward), Is.All.AnyOf("IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM"));
                Assert.That(ours.Select(c => c.BackwardData), Is.All.EqualTo("ALGO_1"));
                Assert.That(ours.Select(c => c.BackwardFilter), Is.All.EqualTo("ALGO_1"));
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
