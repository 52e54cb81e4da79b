using System.Text.RegularExpressions;
using CudaSwa.Cuda;
using CudaSwa.Distributed;
using CudaSwa.Native;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Distributed;

/// <summary>
/// The NCCL bindings against the nccl.h of the machine (where one is installed: CUDA toolkits,
/// PyTorch's nvidia-nccl wheels), a one-rank NCCL all-reduce on a real GPU, and a two-GPU
/// data-parallel run where the machine has two GPUs and MPI.
/// </summary>
public class NcclTests
{
    private static string? FindHeader()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("CUDASWA_NCCL") is { Length: > 0 } lib)
            candidates.Add(Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(lib)))!, "include", "nccl.h"));
        foreach (var dir in NativeLibraries.SearchFolders(includePython: true))
            candidates.Add(Path.Combine(Path.GetDirectoryName(dir)!, "include", "nccl.h"));
        candidates.AddRange(["/usr/include/nccl.h", "/usr/local/cuda/include/nccl.h", "/usr/include/x86_64-linux-gnu/nccl.h"]);
        return candidates.FirstOrDefault(File.Exists);
    }

    [Test]
    [Category("Cpu")]
    public void NcclBindingsMatchTheDeclarationsInNcclH()
    {
        string? header = FindHeader();
        if (header is null) Assert.Ignore("No nccl.h on this machine (NCCL is not installed: it comes with CUDA toolkits and PyTorch's nvidia-nccl wheels).");
        string text = File.ReadAllText(header!);
        foreach (var (name, parameters) in NcclApi.Functions)
        {
            var m = Regex.Match(text, @"ncclResult_t\s+" + name + @"\s*\(([^)]*)\)\s*;");
            Assert.That(m.Success, $"{name} is declared in {header}");
            int count = m.Groups[1].Value.Trim() is "" or "void" ? 0 : m.Groups[1].Value.Split(',').Length;
            Assert.That(count, Is.EqualTo(parameters), $"{name}'s parameters in {header}: {m.Groups[1].Value}");
        }
        Assert.That(Regex.IsMatch(text, @"ncclCommInitRank\s*\(\s*ncclComm_t\s*\*\s*\w+\s*,\s*int\s+\w+\s*,\s*ncclUniqueId\s+\w+\s*,\s*int\s+\w+\s*\)"),
            "ncclCommInitRank(ncclComm_t*, int, ncclUniqueId (by value), int)");
        void Constant(string pattern, string what) => Assert.That(Regex.IsMatch(text, pattern), $"{what} in {header}");
        Constant(@"NCCL_UNIQUE_ID_BYTES\s+" + NcclApi.UniqueIdBytes + @"\b", "NCCL_UNIQUE_ID_BYTES");
        Constant(@"ncclFloat32\s*=\s*" + NcclApi.Float32 + @"\b", "ncclFloat32");
        Constant(@"ncclFloat64\s*=\s*" + NcclApi.Float64 + @"\b", "ncclFloat64");
        Constant(@"ncclUint8\s*=\s*" + NcclApi.Uint8 + @"\b", "ncclUint8");
        Constant(@"ncclSum\s*=\s*" + NcclApi.Sum + @"\b", "ncclSum");
        Constant(@"ncclScalarHostImmediate\s*=\s*" + NcclApi.ScalarHostImmediate + @"\b", "ncclScalarHostImmediate");
        Constant(@"ncclSuccess\s*=\s*" + NcclApi.Success + @"\b", "ncclSuccess");
        TestContext.Out.WriteLine($"checked against {header}");
    }

    [Test]
    [Category("Gpu")]
    [Category("Nccl")]
    public void NcclOneRankWeightedSumOnTheGpu()
    {
        var backend = BackendFixtures.RequireCuda();
        if (!NcclCollective.IsAvailable(out string reason)) Assert.Ignore(reason);
        using var nccl = NcclCollective.Open(Collective.Single, backend);
        var rng = new Fresh();
        var values = rng.Floats(100_003, -3, 3);
        var t = backend.AllocateTensor(new Tensors.TensorShape(values.Length));
        try
        {
            backend.Upload<float>(values, t);
            nccl.AllReduceSum(backend, t, 0.5f);
            Assert.That(backend.ToArray(t), Is.EqualTo(values.Select(v => v * 0.5f).ToArray()), $"one rank: the sum is 0.5 x its own values ({rng})");
            nccl.AllReduceSum(backend, t, 1f);
            Assert.That(backend.ToArray(t), Is.EqualTo(values.Select(v => v * 0.5f).ToArray()), "weight 1 leaves one rank's values as they are");
            TestContext.Out.WriteLine(nccl.Description);
        }
        finally
        {
            t.Buffer.Dispose();
        }
    }

    [Test]
    [Category("Gpu")]
    [Category("Nccl")]
    [NonParallelizable]
    public void NcclTwoGpusTrainDataParallelWithNccl()
    {
        BackendFixtures.RequireCuda();
        int gpus = CudaDevice.Count();
        if (gpus < 2) Assert.Ignore($"This machine has {gpus} GPU; a two-rank NCCL run needs two.");
        if (!NcclCollective.IsAvailable(out string reason)) Assert.Ignore(reason);
        MpiJob.Require();
        string dir = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"nccl-{Guid.NewGuid():N}");
        try
        {
            var r = MpiJob.Run(2, "cudaswa.dll", ["train", "--model", "resnet8", "--epochs", "2", "--swa-start", "1", "--synthetic-train", "1024",
                "--synthetic-test", "256", "--device", "cuda", "--out", dir], TimeSpan.FromSeconds(300));
            Assert.That(r.TimedOut, Is.False, "the job hung");
            Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
            Assert.That(r.Output, Does.Contain("data-parallel: NCCL"));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
