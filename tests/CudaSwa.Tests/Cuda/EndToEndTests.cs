using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CudaSwa.IO;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// Whole `cudaswa` commands with `--device cuda`, each in a child process, compared with the same
/// command on the CPU: on the stand-in CUDA stack ("StandIn": driver, kernels emulated after NVRTC
/// compiled them, cuDNN and cuBLAS, reached through the library overrides) and on a real GPU
/// ("cuda", category Gpu). What agrees, and how closely (the backends round float32 sums
/// differently, so trajectories drift apart slowly):
///   - per-epoch training loss of the first two epochs within 1e-3 relative;
///   - the final SGD, SWA, EMA or SWAG test accuracy within 4 of the 256 test images;
///   - BN statistics recomputed for the SWA model within 2e-2 relative L2 per tensor;
///   - `eval` and `landscape` of ONE run folder on both devices: the same weights, so test
///     accuracy within 1 image and losses within 1e-4 relative (landscape's points include BN
///     statistics recomputed on each device);
///   - a two-member experiment's table: errors within 4 images, NLL within 1e-2 relative;
///   - a device run killed (SIGKILL) inside its second checkpoint and resumed: bit-identical
///     model and SWA weights to an uninterrupted run on the same device.
/// Ignored with the reason without clang++-14 or NVRTC (stand-in), or without a GPU (cuda).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.Devices))]
[Category("EndToEnd")]
[NonParallelizable]
public class EndToEndTests(string backend)
{
    private const int TestImages = 256;
    private static readonly string[] Small = ["--model", "resnet8", "--synthetic-train", "256", "--synthetic-test", "256", "--batch", "64", "--seed", "5"];

    private string _root = "";
    private Dictionary<string, string> _device = []; // what a child process needs to open this fixture's CUDA device

    [OneTimeSetUp]
    public void Prepare()
    {
        if (backend == BackendFixtures.StandInName) _device = StandIn.Environment();
        else BackendFixtures.RequireCuda();
        _root = Cli.CliRunner.TempDir($"e2e-{backend}");
        Directory.CreateDirectory(_root);
        _device["CUDASWA_KERNEL_CACHE"] = Path.Combine(_root, "kernel-cache");
    }

    [OneTimeTearDown]
    public void Clean()
    {
        if (_root.Length > 0 && Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private CudaswaProcess.Result OnDevice(params string[] args) => Succeeds(CudaswaProcess.Run([.. args, "--device", "cuda"], _device), args);

    private static CudaswaProcess.Result OnCpu(params string[] args) => Succeeds(CudaswaProcess.Run([.. args, "--device", "cpu"]), args);

    private static CudaswaProcess.Result Succeeds(CudaswaProcess.Result r, string[] args)
    {
        Assert.That(r.ExitCode, Is.Zero, $"cudaswa {string.Join(" ", args)}:\n{r.Output}");
        return r;
    }

    /// <summary>Trains the same configuration on both devices; returns the two run folders.</summary>
    private (string Cpu, string Device) TrainBoth(string name, params string[] args) => TrainBothLogged(name, null, args);

    /// <summary><see cref="TrainBoth"/>, the device run's file events counted into <paramref name="eventLog"/>.</summary>
    private (string Cpu, string Device) TrainBothLogged(string name, string? eventLog, string[] args)
    {
        string cpu = Path.Combine(_root, name + "-cpu"), device = Path.Combine(_root, name + "-device");
        OnCpu(["train", .. Small, .. args, "--out", cpu]);
        var env = new Dictionary<string, string>(_device);
        if (eventLog is not null) env["CUDASWA_TEST_FILE_EVENTS"] = eventLog;
        string[] full = ["train", .. Small, .. args, "--out", device, "--device", "cuda"];
        var r = Succeeds(CudaswaProcess.Run(full, env), full);
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(device, "summary.json")));
        Assert.That(summary.RootElement.GetProperty("device").GetString(), Does.StartWith("cuda:0"), "summary.json names the cuda device");
        if (backend == BackendFixtures.StandInName)
        {
            Assert.That(r.Output, Does.Contain("stand-in"), "the run says what it ran on");
            Assert.That(summary.RootElement.GetProperty("device").GetString(), Does.Contain("stand-in"));
        }
        return (cpu, device);
    }

    private static double[] Column(string runFolder, string column)
    {
        var lines = File.ReadAllLines(Path.Combine(runFolder, "metrics.csv"));
        int at = Array.IndexOf(lines[0].Split(','), column);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), $"metrics.csv has {column}");
        return lines.Skip(1).Select(l => double.Parse(l.Split(',')[at], CultureInfo.InvariantCulture)).ToArray();
    }

    private static Dictionary<string, double> FinalAccuracies(string runFolder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(runFolder, "summary.json")));
        return doc.RootElement.GetProperty("results").EnumerateArray()
            .ToDictionary(r => r.GetProperty("method").GetString()!, r => r.GetProperty("test_accuracy").GetDouble());
    }

    private static void FirstEpochsAgree(string cpu, string device)
    {
        var a = Column(cpu, "train_loss");
        var b = Column(device, "train_loss");
        for (int e = 0; e < 2; e++)
            Assert.That(b[e], Is.EqualTo(a[e]).Within(1e-3 * Math.Abs(a[e])), $"training loss of epoch {e + 1}");
    }

    private static void FinalResultsAgree(string cpu, string device, params string[] methods)
    {
        var a = FinalAccuracies(cpu);
        var b = FinalAccuracies(device);
        foreach (var m in methods)
        {
            Assert.That(b.ContainsKey(m), Is.True, $"the device run's final table has a {m} row");
            Assert.That(Math.Abs(a[m] - b[m]) * TestImages, Is.LessThanOrEqualTo(4.01), $"{m}: test accuracy {b[m]:P2} on the device vs {a[m]:P2} on the CPU (4 images allowed)");
        }
    }

    private static readonly string[] SwaRun = ["--epochs", "3", "--swa-start", "2"];

    /// <summary>The SWA run on both devices (shared: the kill test's uninterrupted reference is its device run), with the device run's file events.</summary>
    private (string Cpu, string Device, string Events) Swa => _swa ??= TrainSwa();
    private (string, string, string)? _swa;

    private (string, string, string) TrainSwa()
    {
        string events = Path.Combine(_root, "swa-device-events.log");
        var (cpu, device) = TrainBothLogged("swa", events, SwaRun);
        return (cpu, device, events);
    }

    [Test]
    public void EndToEndSwaTrainEvalAndLandscapeMatchTheCpu()
    {
        var (cpu, device, _) = Swa;
        FirstEpochsAgree(cpu, device);
        FinalResultsAgree(cpu, device, "SGD", "SWA", "Ensemble");

        // The SWA model's recomputed BN statistics (running mean and variance in swa.safetensors).
        var statsCpu = SafeTensors.Read(Path.Combine(cpu, "swa.safetensors")).Tensors;
        var statsDevice = SafeTensors.Read(Path.Combine(device, "swa.safetensors")).Tensors;
        var buffers = statsCpu.Keys.Where(k => k.EndsWith("running_mean", StringComparison.Ordinal) || k.EndsWith("running_var", StringComparison.Ordinal)).ToList();
        Assert.That(buffers, Is.Not.Empty);
        foreach (var k in buffers)
        {
            double d2 = 0, n2 = 0;
            var x = statsCpu[k].Data; var y = statsDevice[k].Data;
            for (int i = 0; i < x.Length; i++) { d2 += (x[i] - (double)y[i]) * (x[i] - y[i]); n2 += (double)x[i] * x[i]; }
            Assert.That(Math.Sqrt(d2 / n2), Is.LessThanOrEqualTo(2e-2), $"recomputed BN statistics {k}");
        }

        // eval of one weights file on both devices.
        string[] evalArgs = ["eval", "--weights", Path.Combine(cpu, "swa.safetensors"), "--model", "resnet8", "--test-subset", "256", "--batch", "128"];
        var (accA, nllA) = ParseEval(OnCpu(evalArgs).Output);
        var (accB, nllB) = ParseEval(OnDevice(evalArgs).Output);
        Assert.That(Math.Abs(accA - accB) * TestImages, Is.LessThanOrEqualTo(1.01), "eval accuracy");
        Assert.That(nllB, Is.EqualTo(nllA).Within(1e-4 * nllA), "eval NLL");

        // landscape of the same run folder on both devices.
        string copy = Path.Combine(_root, "swa-cpu-landscape-on-device");
        CopyFolder(cpu, copy);
        string[] land = ["landscape", "--rays", "1", "--steps", "2", "--train-points", "128", "--segment-points", "3"];
        OnCpu([.. land, "--run", cpu]);
        OnDevice([.. land, "--run", copy]);
        var pa = ReadLandscape(cpu);
        var pb = ReadLandscape(copy);
        Assert.That(pb.Count, Is.EqualTo(pa.Count), "as many landscape points");
        for (int i = 0; i < pa.Count; i++)
        {
            Assert.That(pb[i].Key, Is.EqualTo(pa[i].Key));
            Assert.That(pb[i].TrainLoss, Is.EqualTo(pa[i].TrainLoss).Within(1e-4 * pa[i].TrainLoss), $"train loss at {pa[i].Key}");
            Assert.That(pb[i].TestLoss, Is.EqualTo(pa[i].TestLoss).Within(1e-4 * pa[i].TestLoss), $"test loss at {pa[i].Key}");
        }
    }

    [Test]
    public void EndToEndSwagMatchesTheCpu()
    {
        var (cpu, device) = TrainBoth("swag", "--epochs", "3", "--swa-start", "1", "--average", "swag", "--swag-rank", "2", "--swag-samples", "3");
        FirstEpochsAgree(cpu, device);
        FinalResultsAgree(cpu, device, "SGD", "SWA", "SWAG");
        Assert.That(File.Exists(Path.Combine(device, "swag.safetensors")), Is.True, "SWAG's moments written from device memory");
    }

    [Test]
    public void EndToEndEmaMatchesTheCpu()
    {
        var (cpu, device) = TrainBoth("ema", "--epochs", "3", "--swa-start", "1", "--average", "ema", "--ema-decay", "0.9");
        FirstEpochsAgree(cpu, device);
        var a = FinalAccuracies(cpu);
        FinalResultsAgree(cpu, device, [.. a.Keys]);
    }

    [Test]
    public void EndToEndTwoMemberExperimentMatchesTheCpu()
    {
        string cpu = Path.Combine(_root, "experiment-cpu"), device = Path.Combine(_root, "experiment-standin");
        string[] args = ["experiment", "--preset", "quick", "--seeds", "1", "--budgets", "1", "--scale", "0.375", "--synthetic-train", "256", "--synthetic-test", "256"];
        OnCpu([.. args, "--out", cpu]);
        OnDevice([.. args, "--out", device]);
        var ta = File.ReadAllLines(Path.Combine(cpu, "table.csv"));
        var tb = File.ReadAllLines(Path.Combine(device, "table.csv"));
        Assert.That(tb.Length, Is.EqualTo(3), "a header and two members (SGD, SWA)");
        Assert.That(tb.Length, Is.EqualTo(ta.Length));
        var header = ta[0].Split(',');
        int error = Array.IndexOf(header, "mean_error_percent"), nll = Array.IndexOf(header, "mean_nll"), column = Array.IndexOf(header, "column");
        for (int i = 1; i < ta.Length; i++)
        {
            var x = ta[i].Split(','); var y = tb[i].Split(',');
            Assert.That(y[column], Is.EqualTo(x[column]));
            double ea = double.Parse(x[error], CultureInfo.InvariantCulture), eb = double.Parse(y[error], CultureInfo.InvariantCulture);
            double na = double.Parse(x[nll], CultureInfo.InvariantCulture), nb = double.Parse(y[nll], CultureInfo.InvariantCulture);
            Assert.That(Math.Abs(ea - eb) / 100 * TestImages, Is.LessThanOrEqualTo(4.01), $"{x[column]}: test error");
            Assert.That(nb, Is.EqualTo(na).Within(1e-2 * na), $"{x[column]}: NLL");
        }
    }

    [Test]
    public void EndToEndKilledRunResumesBitIdentical()
    {
        string[] args = ["train", .. Small, .. SwaRun];
        var (_, reference, log) = Swa;
        var events = File.ReadAllLines(log).Select(l => l.Split('\t')).ToList();
        var commits = events.Where(e => e[1] == "renamed into place" && e[2] == Checkpoint.StateFile).Select(e => int.Parse(e[0], CultureInfo.InvariantCulture)).ToList();
        Assert.That(commits, Has.Count.EqualTo(3), "one committed checkpoint per epoch");
        int kill = (commits[0] + commits[1]) / 2; // inside the second epoch's checkpoint

        string run = Path.Combine(_root, "kill-run");
        var killed = CudaswaProcess.Run([.. args, "--device", "cuda", "--out", run], new Dictionary<string, string>(_device) { ["CUDASWA_TEST_KILL_AT_FILE_EVENT"] = kill.ToString(CultureInfo.InvariantCulture) });
        Assert.That(killed.ExitCode, Is.EqualTo(137), $"killed at file event {kill} ({string.Join(" ", events[kill - 1][1..])}):\n{killed.Output}");
        Succeeds(CudaswaProcess.Run(["train", "--resume", run], _device), ["train", "--resume", run]);
        foreach (var file in new[] { "model.safetensors", "swa.safetensors" })
            Assert.That(File.ReadAllBytes(Path.Combine(run, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(reference, file))), $"{file} after the kill and resume");
    }

    private static readonly Regex EvalLine = new(@"test accuracy ([0-9.]+)% .*test loss \(NLL\) ([0-9.]+)", RegexOptions.Compiled);

    private static (double Accuracy, double Nll) ParseEval(string output)
    {
        var m = EvalLine.Match(output);
        Assert.That(m.Success, Is.True, $"eval printed its result:\n{output}");
        return (double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / 100, double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    private static List<(string Key, double TrainLoss, double TestLoss)> ReadLandscape(string runFolder)
    {
        var lines = File.ReadAllLines(Path.Combine(runFolder, "landscape.csv"));
        var h = lines[0].Split(',');
        int train = Array.IndexOf(h, "train_loss"), test = Array.IndexOf(h, "test_loss");
        return lines.Skip(1).Select(l => l.Split(',')).Select(f => ($"{f[0]} {f[1]} {f[2]}",
            double.Parse(f[train], CultureInfo.InvariantCulture), double.Parse(f[test], CultureInfo.InvariantCulture))).ToList();
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to));
    }
}
