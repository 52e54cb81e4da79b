using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Distributed;

/// <summary>
/// Data-parallel training over MPI on this machine: the collective seam against values computed
/// independently, R ranks against one process, the CLI's data-parallel run (rank 0 writes; a run
/// stopped and resumed gives an uninterrupted run's bits; another number of ranks is refused), and a
/// killed rank ending the whole job instead of a hang. Every job runs under a time limit.
/// </summary>
[Category("Cpu")]
[Category("Distributed")]
[NonParallelizable] // several processes per test on a 2-core machine
public class DistributedTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(180);
    private string _root = null!;

    [SetUp]
    public void SetUp()
    {
        MpiJob.Require();
        _root = Path.Combine(Path.GetTempPath(), "cudaswa-tests", $"distributed-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_root);
    }

    [TearDown]
    public void TearDown()
    {
        if (_root is not null && Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    private const string Host = "CudaSwa.DistributedHost.dll";

    [Test]
    public void DistributedAllReduceBroadcastAndBarrierGiveTheSumOnEveryRank([Values(2, 3)] int ranks)
    {
        var r = MpiJob.Run(ranks, Host, ["collectives"], Limit);
        Assert.That(r.TimedOut, Is.False, "the job hung");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        for (int rank = 0; rank < ranks; rank++)
            Assert.That(r.Output, Does.Contain($"rank {rank} of {ranks}: collectives ok"), r.All);
    }

    /// <summary>A file of the host: an int32 count, then that many float32 values.</summary>
    private static float[] ReadFloats(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path));
        var v = new float[r.ReadInt32()];
        for (int i = 0; i < v.Length; i++) v[i] = r.ReadSingle();
        return v;
    }

    private static (float[] Weights, float[] Average, float[] Initial) ReadWeights(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        int n = reader.ReadInt32();
        float[] Next() { var v = new float[n]; for (int i = 0; i < n; i++) v[i] = reader.ReadSingle(); return v; }
        return (Next(), Next(), Next());
    }

    [Test]
    public void DistributedRanksSharingEachBatchTrainTheWeightsOfOneProcess([Values(2, 3)] int ranks)
    {
        // A BN-free network: R ranks x 128/R samples must give 1 process x 128 up to the order the
        // gradient's partial sums are added (the ranks' shards are summed by the all-reduce).
        var (one, many) = TrainAloneAndOnRanks("train", ranks);
        TestContext.Out.WriteLine($"{ranks} ranks vs one process: {CompareWeights(one, many, ranks)}");
    }

    [Test]
    public void DistributedSynchronisedBatchNormTrainsTheNetworkOfOneProcess([Values(2, 3)] int ranks)
    {
        // A conv-BN network (BN fused with a ReLU, and BN alone): with synchronised BN every BN layer
        // normalises with the whole batch's statistics and back-propagates through them, so R ranks
        // must match one process up to float rounding, running statistics included. Each epoch ends
        // with a batch of 2: 2 ranks get one sample each, 3 ranks one, one and none.
        var (one, many) = TrainAloneAndOnRanks("train-sync-bn", ranks);
        string weights = CompareWeights(one, many, ranks);
        var (b1, br) = (ReadBuffers(one), ReadBuffers(many));
        Assert.That(br, Has.Length.EqualTo(b1.Length));
        double worstBuffer = 0;
        for (int i = 0; i < b1.Length; i++)
        {
            Assert.That(Math.Abs(br[i] - b1[i]), Is.LessThanOrEqualTo(1e-6 + 1e-5 * Math.Abs(b1[i])), $"BN running statistic {i} with {ranks} ranks");
            worstBuffer = Math.Max(worstBuffer, Math.Abs(br[i] - b1[i]));
        }
        TestContext.Out.WriteLine($"{ranks} ranks with synchronised BN vs one process: {weights}; BN running statistics within {worstBuffer:E2}");
    }

    /// <summary>The host program's <paramref name="mode"/> run alone and on <paramref name="ranks"/> ranks; the two output files.</summary>
    private (string One, string Many) TrainAloneAndOnRanks(string mode, int ranks)
    {
        string one = Path.Combine(_root, $"{mode}-1.bin"), many = Path.Combine(_root, $"{mode}-{ranks}.bin");
        var single = MpiJob.Run(0, Host, [mode, one, "4"], Limit);
        Assert.That(single.ExitCode, Is.EqualTo(0), single.All);
        var job = MpiJob.Run(ranks, Host, [mode, many, "4"], Limit);
        Assert.That(job.TimedOut, Is.False, "the job hung");
        Assert.That(job.ExitCode, Is.EqualTo(0), job.All);
        return (one, many);
    }

    /// <summary>Weights and SWA average of the ranks' run against one process's, within the stated tolerance; a summary of the differences.</summary>
    private static string CompareWeights(string one, string many, int ranks)
    {
        var (w1, a1, init) = ReadWeights(one);
        var (wr, ar, initR) = ReadWeights(many);
        Assert.That(initR, Is.EqualTo(init), "every rank starts from the same weights as the single process");
        double moved = w1.Zip(init).Max(p => Math.Abs(p.First - p.Second));
        double worst = 0, worstAverage = 0;
        for (int i = 0; i < w1.Length; i++)
        {
            // Stated tolerance: 1e-6 absolute + 1e-5 relative after 8-10 steps (float rounding of reordered sums, amplified by training).
            Assert.That(Math.Abs(wr[i] - w1[i]), Is.LessThanOrEqualTo(1e-6 + 1e-5 * Math.Abs(w1[i])), $"weight {i} with {ranks} ranks");
            Assert.That(Math.Abs(ar[i] - a1[i]), Is.LessThanOrEqualTo(1e-6 + 1e-5 * Math.Abs(a1[i])), $"SWA average {i} with {ranks} ranks");
            worst = Math.Max(worst, Math.Abs(wr[i] - w1[i]));
            worstAverage = Math.Max(worstAverage, Math.Abs(ar[i] - a1[i]));
        }
        Assert.That(moved, Is.GreaterThan(1000 * Math.Max(worst, 1e-9)), "training moved the weights far more than the ranks' difference");
        return $"weights within {worst:E2}, SWA average within {worstAverage:E2}; training moved weights by up to {moved:E2}";
    }

    /// <summary>The BN running statistics written after the weights by train-sync-bn.</summary>
    private static float[] ReadBuffers(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        int n = reader.ReadInt32();
        reader.BaseStream.Seek(4L + 3L * 4 * n, SeekOrigin.Begin);
        int m = reader.ReadInt32();
        var v = new float[m];
        for (int i = 0; i < m; i++) v[i] = reader.ReadSingle();
        return v;
    }

    [Test]
    public void DistributedBatchNormRecomputeSharesTheBatchesAndGivesThePopulationStatistics([Values(2, 3)] int ranks)
    {
        // 1,000 images in batches of 128: 8 batches, dealt to the ranks in turn (3 ranks: 3, 3, 2).
        string one = Path.Combine(_root, "bn1.bin"), many = Path.Combine(_root, "bnR.bin");
        var single = MpiJob.Run(0, Host, ["bn-recompute", one], Limit);
        Assert.That(single.ExitCode, Is.EqualTo(0), single.All);
        var job = MpiJob.Run(ranks, Host, ["bn-recompute", many], Limit);
        Assert.That(job.TimedOut, Is.False, "the job hung");
        Assert.That(job.ExitCode, Is.EqualTo(0), job.All);
        var a = ReadFloats(one);
        var b = ReadFloats(many);
        Assert.That(b, Has.Length.EqualTo(a.Length));
        Assert.That(a.Count(v => v != 0 && v != 1), Is.GreaterThanOrEqualTo(40), "the 48 running means and variances were recomputed (not the reset values)");
        // The merge (float64 over the ranks) reorders the single process's running merge: float rounding only.
        for (int i = 0; i < a.Length; i++)
            Assert.That(Math.Abs(b[i] - a[i]), Is.LessThanOrEqualTo(1e-6 + 2e-5 * Math.Abs(a[i])), $"BN buffer value {i} with {ranks} ranks");
        TestContext.Out.WriteLine($"{ranks} ranks vs one process: BN statistics within {a.Zip(b).Max(p => Math.Abs(p.First - p.Second)):E2}");
    }

    [Test]
    public void DistributedSwapAveragesTheRanksPhaseTwoModels([Values(2, 3)] int ranks)
    {
        string out_ = Path.Combine(_root, "swap.bin");
        var job = MpiJob.Run(ranks, Host, ["swap", out_], Limit);
        Assert.That(job.TimedOut, Is.False, "the job hung");
        Assert.That(job.ExitCode, Is.EqualTo(0), job.All);
        var own = Enumerable.Range(0, ranks).Select(r => ReadFloats($"{out_}.rank{r}")).ToArray();
        var averaged = ReadFloats(out_);
        // Phase 2 trained each rank alone on its own data order: the models differ.
        double apart = own[0].Zip(own[1]).Max(p => Math.Abs(p.First - p.Second));
        Assert.That(apart, Is.GreaterThan(1e-3), "the ranks' phase-2 models differ");
        for (int i = 0; i < averaged.Length; i++)
        {
            double mean = own.Sum(w => (double)w[i]) / ranks;
            // Each rank adds w/R in float32: a few roundings of the mean's size.
            Assert.That(Math.Abs(averaged[i] - mean), Is.LessThanOrEqualTo(1e-9 + 4e-7 * Math.Abs(mean)), $"weight {i}: SWAP average vs the mean of the {ranks} ranks' models");
        }
        TestContext.Out.WriteLine($"{ranks} ranks: phase-2 models up to {apart:E2} apart; the average is their mean to float rounding");
    }

    [Test]
    public void DistributedSwapNeedsTwoRanksAndSaysSo()
    {
        var alone = MpiJob.Run(0, "cudaswa.dll", ["train", "--model", "resnet8", "--epochs", "3", "--swap-phase2", "1", "--synthetic-train", "256", "--device", "cpu", "--out", Path.Combine(_root, "alone")], Limit);
        Assert.That(alone.ExitCode, Is.EqualTo(2), alone.All);
        Assert.That(alone.All, Does.Contain("--swap-phase2").And.Contain("two ranks"));
        var late = MpiJob.Run(2, "cudaswa.dll", ["train", "--model", "resnet8", "--epochs", "3", "--swap-phase2", "3", "--synthetic-train", "256", "--device", "cpu", "--out", Path.Combine(_root, "late")], Limit);
        Assert.That(late.ExitCode, Is.EqualTo(2), late.All);
        Assert.That(late.All, Does.Contain("--swap-phase2"));
    }

    [Test]
    public void DistributedSwapStoppedInPhaseTwoResumesBitForBit()
    {
        // Phase 1 is epoch 1 (4 batches of 128); phase 2 has 8 batches of 64 per epoch: stop at batch 6 of epoch 2.
        string[] Args(string dir) => ["train", "--model", "resnet8", "--epochs", "3", "--swap-phase2", "1", "--synthetic-train", "512",
            "--synthetic-test", "128", "--device", "cpu", "--out", dir];
        string whole = Path.Combine(_root, "swap-whole"), stopped = Path.Combine(_root, "swap-stopped");
        var a = MpiJob.Run(2, "cudaswa.dll", Args(whole), Limit);
        Assert.That(a.ExitCode, Is.EqualTo(0), a.All);
        var stop = MpiJob.Run(2, "cudaswa.dll", [.. Args(stopped), "--halt-after-batches", "10"], Limit);
        Assert.That(stop.TimedOut, Is.False, "the stop hung");
        Assert.That(stop.ExitCode, Is.EqualTo(130), stop.All);
        var state = Checkpoint.ReadState(stopped);
        Assert.That((state.NextEpoch, state.NextBatch), Is.EqualTo((1, 6)), "stopped inside phase 2, past the whole-batch count (4) of an epoch");
        Assert.That(File.Exists(Path.Combine(CudaSwa.Training.Parallel.DataParallelRun.RankFolder(stopped, 1), Checkpoint.StateFile)), "rank 1 keeps its own checkpoint");
        var resume = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", stopped], Limit);
        Assert.That(resume.TimedOut, Is.False, "the resume hung");
        Assert.That(resume.ExitCode, Is.EqualTo(0), resume.All);
        Assert.That(File.ReadAllBytes(Path.Combine(stopped, "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole, "model.safetensors"))),
            "the SWAP model of the stopped and resumed job = the uninterrupted job's");
        Assert.That(resume.Output, Does.Contain("SWAP"));
    }

    [Test]
    public void DistributedSwapRanksASaveApartGoBackToTheCommonPositionAndResumeBitForBit([Values] bool rankZeroAhead)
    {
        // A stop between the ranks' saves leaves one rank's last checkpoint a save ahead. Made here
        // exactly: stop inside phase 2, keep a copy of one rank's checkpoints, run one more batch
        // (a stop saves again), then put the copy back. The resume must bring every rank to the
        // common position and give the uninterrupted job's SWAP model bit for bit.
        string[] Args(string dir) => ["train", "--model", "resnet8", "--epochs", "3", "--swap-phase2", "1", "--synthetic-train", "512",
            "--synthetic-test", "128", "--device", "cpu", "--out", dir];
        string whole = Path.Combine(_root, "apart-whole"), run = Path.Combine(_root, "apart"), kept = Path.Combine(_root, "apart-kept");
        var a = MpiJob.Run(2, "cudaswa.dll", Args(whole), Limit);
        Assert.That(a.ExitCode, Is.EqualTo(0), a.All);
        var stop = MpiJob.Run(2, "cudaswa.dll", [.. Args(run), "--halt-after-batches", "10"], Limit);
        Assert.That(stop.ExitCode, Is.EqualTo(130), stop.All);
        long behind = Checkpoint.ReadState(run).GlobalStep;
        string rank1 = CudaSwa.Training.Parallel.DataParallelRun.RankFolder(run, 1);
        // The rank that will be behind: rank 1 (its folder) or rank 0 (state.json and checkpoints/ of the run folder).
        if (rankZeroAhead) CopyFolder(rank1, kept);
        else
        {
            CopyFolder(Path.Combine(run, "checkpoints"), Path.Combine(kept, "checkpoints"));
            File.Copy(Path.Combine(run, Checkpoint.StateFile), Path.Combine(kept, Checkpoint.StateFile));
        }
        var step = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", run, "--halt-after-batches", "1"], Limit);
        Assert.That(step.ExitCode, Is.EqualTo(130), step.All);
        Assert.That(Checkpoint.ReadState(run).GlobalStep, Is.EqualTo(behind + 1));
        if (rankZeroAhead)
        {
            Directory.Delete(rank1, recursive: true);
            CopyFolder(kept, rank1);
        }
        else
        {
            Directory.Delete(Path.Combine(run, "checkpoints"), recursive: true);
            CopyFolder(Path.Combine(kept, "checkpoints"), Path.Combine(run, "checkpoints"));
            File.Copy(Path.Combine(kept, Checkpoint.StateFile), Path.Combine(run, Checkpoint.StateFile), overwrite: true);
        }
        Assert.That(Checkpoint.ReadState(run).GlobalStep, Is.EqualTo(rankZeroAhead ? behind + 1 : behind), "the ranks are a save apart");

        var resume = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", run], Limit);
        Assert.That(resume.TimedOut, Is.False, "the resume hung");
        Assert.That(resume.ExitCode, Is.EqualTo(0), resume.All);
        Assert.That(resume.All, Does.Contain($"global step {behind}"), "the run says it went back, and to where");
        Assert.That(File.ReadAllBytes(Path.Combine(run, "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole, "model.safetensors"))),
            "the SWAP model after going back and resuming = the uninterrupted job's");
    }

    [Test]
    public void DistributedSwapRanksTwoSavesApartStopWithTheReasonInsteadOfHanging()
    {
        string[] Args(string dir) => ["train", "--model", "resnet8", "--epochs", "3", "--swap-phase2", "1", "--synthetic-train", "512",
            "--synthetic-test", "128", "--device", "cpu", "--out", dir];
        string run = Path.Combine(_root, "far"), kept = Path.Combine(_root, "far-kept");
        var stop = MpiJob.Run(2, "cudaswa.dll", [.. Args(run), "--halt-after-batches", "10"], Limit);
        Assert.That(stop.ExitCode, Is.EqualTo(130), stop.All);
        string rank1 = CudaSwa.Training.Parallel.DataParallelRun.RankFolder(run, 1);
        CopyFolder(rank1, kept);
        for (int i = 0; i < 2; i++)
        {
            var step = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", run, "--halt-after-batches", "1"], Limit);
            Assert.That(step.ExitCode, Is.EqualTo(130), step.All);
        }
        Directory.Delete(rank1, recursive: true);
        CopyFolder(kept, rank1);
        var resume = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", run], Limit);
        Assert.That(resume.TimedOut, Is.False, "the resume hung");
        Assert.That(resume.ExitCode, Is.Not.EqualTo(0), resume.All);
        Assert.That(resume.All, Does.Contain("do not meet"));
        Assert.That(resume.All, Does.Contain("rank 1 holds"));
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.GetDirectories(from)) CopyFolder(dir, Path.Combine(to, Path.GetFileName(dir)));
    }

    [Test]
    public void DistributedTorchrunStyleLaunchWithoutMpiIsRefusedWithTheReason()
    {
        string dir = Path.Combine(_root, "torchrun");
        var variables = new Dictionary<string, string> { ["RANK"] = "1", ["WORLD_SIZE"] = "2", ["LOCAL_RANK"] = "1" };
        var r = Cli.CliRunner.RunWith(v => variables.GetValueOrDefault(v), "train", "--model", "resnet8", "--epochs", "2", "--swa-start", "1", "--synthetic-train", "256", "--device", "cpu", "--out", dir);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.All, Does.Contain("torchrun-style").And.Contain("mpiexec"));
        Assert.That(Directory.Exists(dir), Is.False, "nothing written");
    }

    [Test]
    public void DistributedRunsThatWouldGiveARankOneSampleOrRunAnExperimentAreRefused()
    {
        // 130 images in batches of 128: the last batch has 2, so 3 ranks would give one rank a single sample.
        string dir = Path.Combine(_root, "one-sample");
        var r = MpiJob.Run(3, "cudaswa.dll", ["train", "--model", "resnet8", "--epochs", "2", "--swa-start", "1", "--synthetic-train", "130",
            "--synthetic-test", "64", "--device", "cpu", "--out", dir], Limit);
        Assert.That(r.TimedOut, Is.False, "the refusal hung");
        Assert.That(r.ExitCode, Is.Not.EqualTo(0), r.All);
        Assert.That(r.All, Does.Contain("a single sample"));
        var e = MpiJob.Run(2, "cudaswa.dll", ["experiment", "--scale", "0.5", "--seeds", "1", "--synthetic-train", "300", "--device", "cpu", "--out", Path.Combine(_root, "exp")], Limit);
        Assert.That(e.TimedOut, Is.False);
        Assert.That(e.ExitCode, Is.EqualTo(2), e.All);
        Assert.That(e.All, Does.Contain("--slurm-script"));
        Assert.That(Directory.Exists(Path.Combine(_root, "exp")), Is.False, "nothing written");
    }

    private static string[] TinyTrain(string outDir) =>
        ["train", "--model", "resnet8", "--epochs", "3", "--swa-start", "1", "--synthetic-train", "512", "--synthetic-test", "128", "--device", "cpu", "--out", outDir];

    [Test]
    public void DistributedCliRunWithSyncBnGivesTheModelOfOneProcess()
    {
        // resnet8 (BN fused with ReLUs, BN before residual adds, BN on the shortcut): 2 ranks with
        // --sync-bn against one process, 2 steps. The model (weights and BN running statistics) must
        // agree to float rounding. (Only 2 steps: training resnet8 on these random images amplifies
        // rounding fast; one process started from weights moved by one ulp ends 1.3e-3 away after 6
        // steps. The host program's test covers 10 steps of a smaller network.) The absolute part of
        // the bound is 3e-6: the CPU's Winograd filter gradients sum in the transformed domain, and the
        // two runs split the batch's sums differently (seen: 1.4e-6 on a stem weight).
        string[] Args(string outDir) =>
            ["train", "--model", "resnet8", "--epochs", "1", "--sgd-only", "--synthetic-train", "256", "--synthetic-test", "128", "--device", "cpu", "--sync-bn", "--out", outDir];
        string alone = Path.Combine(_root, "alone"), ranks = Path.Combine(_root, "sync");
        var one = MpiJob.Run(0, "cudaswa.dll", Args(alone), Limit);
        Assert.That(one.ExitCode, Is.EqualTo(0), one.All);
        Assert.That(one.All, Does.Contain("--sync-bn has no effect on one process"));
        var two = MpiJob.Run(2, "cudaswa.dll", Args(ranks), Limit);
        Assert.That(two.TimedOut, Is.False, "the job hung");
        Assert.That(two.ExitCode, Is.EqualTo(0), two.All);
        Assert.That(two.Output, Does.Contain("BN synchronised"));
        Assert.That(Checkpoint.ReadState(ranks).Options.SyncBatchNorm, Is.True, "the run's options record --sync-bn (a resume keeps it)");
        var a = CudaSwa.IO.SafeTensors.Read(Path.Combine(alone, "model.safetensors")).Tensors;
        var b = CudaSwa.IO.SafeTensors.Read(Path.Combine(ranks, "model.safetensors")).Tensors;
        Assert.That(b.Keys, Is.EquivalentTo(a.Keys));
        double worst = 0;
        foreach (var (name, entry) in a)
            for (int i = 0; i < entry.Data.Length; i++)
            {
                double d = Math.Abs(b[name].Data[i] - entry.Data[i]);
                Assert.That(d, Is.LessThanOrEqualTo(3e-6 + 1e-5 * Math.Abs(entry.Data[i])), $"{name}[{i}]");
                worst = Math.Max(worst, d);
            }
        TestContext.Out.WriteLine($"2 ranks with --sync-bn vs one process, resnet8 after 2 steps: model values within {worst:E2}");
    }

    [Test]
    public void DistributedCliRunResumesBitForBitAndRefusesAnotherNumberOfRanks()
    {
        string whole = Path.Combine(_root, "whole"), stopped = Path.Combine(_root, "stopped");
        var a = MpiJob.Run(2, "cudaswa.dll", TinyTrain(whole), Limit);
        Assert.That(a.TimedOut, Is.False, "the job hung");
        Assert.That(a.ExitCode, Is.EqualTo(0), a.All);
        Assert.That(a.Output, Does.Contain("data-parallel: MPI"));
        Assert.That(a.Output.Split('\n').Count(l => l.Contains("final test results", StringComparison.Ordinal)), Is.EqualTo(1), "only rank 0 reports");
        var state = Checkpoint.ReadState(whole);
        Assert.That(state.Ranks, Is.EqualTo(2));
        Assert.That(state.NextEpoch, Is.EqualTo(3));

        // Stopped on rank 0 after 5 batches (epoch 2 of 3, mid-epoch): every rank stops at the same step.
        var b = MpiJob.Run(2, "cudaswa.dll", [.. TinyTrain(stopped), "--halt-after-batches", "5"], Limit);
        Assert.That(b.TimedOut, Is.False, "the stop hung");
        Assert.That(b.ExitCode, Is.EqualTo(130), b.All);
        Assert.That(Checkpoint.ReadState(stopped).NextBatch, Is.EqualTo(1));

        // One process cannot continue a two-rank run.
        var alone = MpiJob.Run(0, "cudaswa.dll", ["train", "--resume", stopped], Limit);
        Assert.That(alone.ExitCode, Is.Not.EqualTo(0), alone.All);
        Assert.That(alone.All, Does.Contain("2 rank(s)"));

        var c = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", stopped], Limit);
        Assert.That(c.ExitCode, Is.EqualTo(0), c.All);
        foreach (var file in new[] { "model.safetensors", "swa.safetensors" })
            Assert.That(File.ReadAllBytes(Path.Combine(stopped, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole, file))), $"{file}: stopped and resumed = uninterrupted");
        var h1 = Checkpoint.ReadState(whole).History.Select(r => (r.TrainLoss, r.Trained?.Accuracy, r.Average?.Accuracy));
        var h2 = Checkpoint.ReadState(stopped).History.Select(r => (r.TrainLoss, r.Trained?.Accuracy, r.Average?.Accuracy));
        Assert.That(h2, Is.EqualTo(h1));
    }

    [Test]
    public void DistributedKilledRankEndsTheJobInsteadOfHangingAndTheRunResumes()
    {
        string dir = Path.Combine(_root, "killed");
        var args = TinyTrain(dir).ToArray();
        args[Array.IndexOf(args, "--epochs") + 1] = "8";
        // Rank 0 (the only rank that writes the run folder) is held at the event that commits its first
        // checkpoint (state.json renamed into place), found from an uninterrupted run's event log.
        string log = Path.Combine(_root, "killed-events.log");
        var once = TinyTrain(Path.Combine(_root, "killed-reference")).ToArray();
        once[Array.IndexOf(once, "--epochs") + 1] = "1";
        var reference = MpiJob.Run(2, "cudaswa.dll", once, Limit, new Dictionary<string, string> { ["CUDASWA_TEST_FILE_EVENTS"] = log });
        Assert.That(reference.ExitCode, Is.Zero, reference.All);
        int commit = File.ReadAllLines(log).Select(l => l.Split('\t')).First(e => e[1] == "renamed into place" && e[2] == Checkpoint.StateFile)[0] is var first
            ? int.Parse(first, System.Globalization.CultureInfo.InvariantCulture) : 0;
        string release = Path.Combine(_root, "killed-release");
        var job = MpiJob.Start(2, "cudaswa.dll", args, new Dictionary<string, string> { ["CUDASWA_TEST_HOLD_AT_FILE_EVENT"] = $"{commit}:{release}" });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Wait until rank 0 holds just after committing its first checkpoint, then kill rank 1 outright (no signal it could handle).
        while (!File.Exists(release + ".held") && clock.Elapsed < Limit && !job.HasExited) Thread.Sleep(50);
        Assert.That(job.HasExited, Is.False, "the job ended before rank 0 reached its first checkpoint");
        Assert.That(File.Exists(release + ".held"), Is.True, "rank 0 reached the hold point");
        var victims = MpiJob.RankProcesses(1, dir);
        Assert.That(victims, Is.Not.Empty, "rank 1's process");
        foreach (int pid in victims) System.Diagnostics.Process.GetProcessById(pid).Kill();
        File.WriteAllText(release, ""); // rank 0 goes on, into an exchange with a rank that is gone
        var r = MpiJob.Wait(job, TimeSpan.FromSeconds(60));
        Assert.That(r.TimedOut, Is.False, "the surviving rank hung after rank 1 was killed");
        Assert.That(r.ExitCode, Is.Not.EqualTo(0), r.All);
        TestContext.Out.WriteLine($"mpiexec after the kill (exit {r.ExitCode}):\n{r.Error.Trim()}");
        Assert.That(r.All, Does.Contain("BAD TERMINATION").Or.Contain("killed").Or.Contain("KILLED"), "the launcher says a rank died");

        // The last committed checkpoint is intact: two ranks continue from it to the end.
        var state = Checkpoint.ReadState(dir);
        Assert.That(state.NextEpoch, Is.EqualTo(1), "killed right after the first epoch's checkpoint");
        var resumed = MpiJob.Run(2, "cudaswa.dll", ["train", "--resume", dir], Limit);
        Assert.That(resumed.TimedOut, Is.False);
        Assert.That(resumed.ExitCode, Is.EqualTo(0), resumed.All);
        Assert.That(Checkpoint.ReadState(dir).NextEpoch, Is.EqualTo(8));
    }
}
