using System.Diagnostics;
using System.Text.Json;
using CudaSwa.Cpu;
using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>
/// Our safetensors files are PyTorch state_dicts: PyTorch loads one into the same architecture
/// (bench/pytorch/cifar_models.py) with load_state_dict and reproduces our eval-mode logits.
/// Needs a python3 with PyTorch (Debian: apt-get install python3-torch); ignored, with the reason, without one.
/// </summary>
public class PyTorchInteropTests
{
    private static string? Python()
    {
        foreach (var candidate in new[] { "/usr/bin/python3", "python3" })
        {
            try
            {
                var psi = new ProcessStartInfo(candidate, ["-c", "import torch, numpy"]) { RedirectStandardError = true, RedirectStandardOutput = true };
                using var p = Process.Start(psi)!;
                p.WaitForExit(60_000);
                if (p.ExitCode == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception) { }
        }
        return null;
    }

    private static string? Repo()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "bench", "pytorch", "load_weights.py"))) return dir.FullName;
        return null;
    }

    [TestCase("resnet20")]
    [TestCase("wrn28x10")]
    public void PyTorchLoadsOurWeightsAndReproducesTheLogits(string model)
    {
        string? repo = Repo();
        if (repo is null) Assert.Ignore("bench/pytorch is not next to the tests (e.g. a GPU bundle).");
        string? python = Python();
        if (python is null) Assert.Ignore("No python3 with PyTorch here (Debian: apt-get install python3-torch): the interop check needs one.");
        var rng = new Fresh();
        using var cpu = new CpuBackend();
        int batch = 4;
        using var net = ModelZoo.Create(model, 10, cpu, batch, seed: (ulong)rng.Seed);
        // Non-trivial BN scale/shift and statistics, so a mix-up of any of them shows.
        net.Buffers.FromHost(BufferValues(net, rng));
        var parameters = net.Parameters.ToHost();
        foreach (var e in net.ParameterLayout.Entries)
            if (e.Role is Tensors.ArenaRole.BatchNormScale or Tensors.ArenaRole.BatchNormShift)
                rng.Floats((int)e.Length, 0.5f, 1.5f).CopyTo(parameters, (int)e.Offset);
        net.Parameters.FromHost(parameters);
        string dir = CliRunner.TempDir("interop");
        Directory.CreateDirectory(dir);
        try
        {
            string weights = Path.Combine(dir, "w.safetensors"), input = Path.Combine(dir, "x.f32");
            ModelWeights.Save(weights, net);
            var x = rng.Floats(batch * 3 * 32 * 32, -2, 2);
            File.WriteAllBytes(input, System.Runtime.InteropServices.MemoryMarshal.AsBytes(x.AsSpan()).ToArray());
            cpu.Upload<float>(x, net.Input(batch));
            net.Forward(batch, RunMode.Eval);
            var ours = cpu.ToArray(net.Logits(batch));

            var psi = new ProcessStartInfo(python!, [Path.Combine(repo!, "bench", "pytorch", "load_weights.py"), "--model", model, "--weights", weights,
                "--input", input, "--batch", batch.ToString()]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.That(p.ExitCode, Is.Zero, $"load_weights.py failed:\n{stderr}");
            var doc = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
            var theirs = doc.GetProperty("logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.That(doc.GetProperty("loaded").GetInt32(), Is.EqualTo(net.ParameterLayout.Entries.Count + net.BufferLayout.Entries.Count));
            Close.Check(ours, theirs, 1e-4, 1e-4, $"{model} eval logits, ours vs PyTorch ({rng})");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static float[] BufferValues(Network net, Fresh rng)
    {
        var values = new float[net.Buffers.All.Length];
        foreach (var e in net.BufferLayout.Entries)
        {
            var v = e.Role == Tensors.ArenaRole.BatchNormRunningVar ? rng.Floats((int)e.Length, 0.5f, 1.5f) : rng.Floats((int)e.Length, -0.3f, 0.3f);
            v.CopyTo(values, (int)e.Offset);
        }
        return values;
    }
}
