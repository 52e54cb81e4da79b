using System.Diagnostics;
using System.Runtime.InteropServices;
using CudaSwa.Averaging;
using CudaSwa.Cuda;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Training;

namespace CudaSwa.Benchmarks;

/// <summary>
/// End-to-end measurements for `cudaswa bench`: training step, evaluation and BN recompute
/// throughput on random data of CIFAR shape, and the fused SWA update against a plain copy of the
/// same bytes, all in one process on one device. Each figure is the best of three timed repeats
/// after warm-up, with the device synchronised before the clock stops.
/// </summary>
public static class BenchHarness
{
    /// <summary>Times each of <paramref name="models"/> on <paramref name="backend"/> (every kernel loaded first, untimed) and reports the figures with the device and libraries.</summary>
    /// <param name="backend">The device to measure.</param>
    /// <param name="models">Model names of the <see cref="Models.ModelZoo"/>.</param>
    /// <param name="batch">Batch size of every measurement.</param>
    /// <param name="steps">Training steps (and evaluation batches) per timed repeat.</param>
    /// <param name="swaOnly">Only the SWA update and the copy it is compared with.</param>
    /// <param name="log">Receives progress lines.</param>
    /// <param name="profile">After the timed repeats, run each measurement once more under an
    /// <see cref="OpProfiler"/> and log the per-op table (not part of the timed figures).</param>
    public static BenchReport Run(Backend backend, IReadOnlyList<string> models, int batch, int steps, bool swaOnly, Action<string> log, bool profile = false)
    {
        var results = new List<ModelBench>();
        if (backend is CudaBackend warm)
        {
            log("compiling (or reading from the cache) and loading every kernel before timing...");
            warm.LoadAllKernels();
        }
        foreach (var model in models)
        {
            log($"{model}: building for batch {batch} on {backend.Name}...");
            results.Add(Measure(backend, model, batch, steps, swaOnly, log, profile));
        }
        return Report(backend, results, $"best of 3 repeats after warm-up; {steps} steps per repeat; batch {batch}; random CIFAR-shaped data");
    }

    /// <summary>
    /// The convolution roofline: every distinct convolution of <paramref name="models"/> in all
    /// three passes with every algorithm of the device (best of 3 after 3 warm-up calls), and on the CPU
    /// the measured FMA ceiling of all cores.
    /// </summary>
    public static BenchReport RunConvolutions(Backend backend, IReadOnlyList<string> models, int batch, Action<string> log)
    {
        var (peak, width) = backend.MeasureArithmeticPeak();
        if (peak > 0) log($"FMA ceiling: {peak:F0} GFLOP/s ({width})");
        var rows = ConvolutionRoofline.Run(backend, models, batch, 3, log);
        return Report(backend, [], $"every convolution of {string.Join(",", models)} at batch {batch}: best of 3 after 3 warm-up calls, random data") with
        {
            Convolutions = rows,
            FmaPeakGflops = peak,
            FmaPeakWidth = width,
        };
    }

    /// <summary>
    /// Gets a device ready, untimed: every kernel compiled or read from the cache and loaded, every
    /// convolution shape of every model planned (cuDNN algorithm search, cached on disk), one
    /// training step and one evaluation forward run; logs the algorithms chosen.
    /// </summary>
    public static BenchReport Prepare(Backend backend, IReadOnlyList<string> models, int batch, Action<string> log)
    {
        var sw = Stopwatch.StartNew();
        if (backend is CudaBackend cuda)
        {
            cuda.LoadAllKernels();
            log($"kernels: {CudaBackend.Kernels.All.Count} loaded in {sw.Elapsed.TotalSeconds:F1} s ({(cuda.KernelLibrary.Cubin ? "CUBIN" : "PTX")} for sm_{cuda.KernelLibrary.Architecture}, cache {cuda.KernelCacheFolder})");
        }
        foreach (var model in models)
        {
            sw.Restart();
            using var net = ModelZoo.Create(model, 10, backend, batch, seed: 1);
            using var sgd = new Sgd(net, 0.9f, 5e-4f);
            using var step = new TrainingStep(net, sgd);
            backend.Upload<float>(new float[batch * 3 * 32 * 32], net.Input(batch));
            backend.Upload<int>(Enumerable.Range(0, batch).Select(i => i % 10).ToArray(), step.Labels);
            step.Run(batch, 0.01f, 0);
            net.Forward(batch, RunMode.Eval);
            backend.Synchronize();
            log($"{model}: built, one training step and one evaluation pass in {sw.Elapsed.TotalSeconds:F1} s");
        }
        var report = Report(backend, [], $"preparation only (untimed): kernels loaded, convolution algorithms chosen for batch {batch}");
        foreach (var a in report.ConvolutionAlgorithms)
            log($"  {a.Shape}: forward {a.Forward}, backward data {a.BackwardData}, backward filter {a.BackwardFilter}, workspace {a.WorkspaceBytes / 1048576.0:F1} MiB" +
                (a.Note.Length > 0 ? $" ({a.Note})" : ""));
        return report;
    }

    private static BenchReport Report(Backend backend, List<ModelBench> results, string method)
    {
        var libraries = new Dictionary<string, string> { ["dotnet"] = RuntimeInformation.FrameworkDescription, ["gemm"] = Cpu.Gemm.KernelName };
        string deviceName = backend.Description;
        var algorithms = new List<ConvolutionAlgorithm>();
        if (backend is CudaBackend cuda)
        {
            libraries["cuda_driver"] = CudaDevice.FormatVersion(cuda.DriverVersion);
            libraries["cuda_libraries"] = $"CUDA {cuda.Libraries.CudaMajor}";
            libraries["cudnn"] = $"{Native.ToolkitSelection.FormatCudnn(cuda.CudnnVersion)} ({cuda.Libraries.Cudnn?.Path})";
            libraries["cublas"] = $"{cuda.Libraries.Cublas?.Version} ({cuda.Libraries.Cublas?.Path})";
            libraries["nvrtc"] = $"{cuda.NvrtcVersion} ({cuda.Libraries.Nvrtc?.Path})";
            libraries["tf32"] = cuda.AllowTf32 ? "on" : "off";
            deviceName = cuda.DeviceName;
            algorithms.AddRange(cuda.ConvolutionChoices.Select(c => new ConvolutionAlgorithm(c.Shape, c.Forward, c.BackwardData, c.BackwardFilter, c.WorkspaceBytes, c.Note)));
        }
        return new BenchReport
        {
            Device = backend is CudaBackend ? "cuda" : "cpu",
            DeviceName = deviceName,
            Machine = $"{Environment.ProcessorCount} logical cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture}",
            Libraries = libraries,
            Date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
            Method = method,
            Results = results,
            ConvolutionAlgorithms = algorithms,
        };
    }

    /// <summary>Best of several timed repeats: wall clock with the device synchronised, or CUDA events (device time) when asked.</summary>
    private static double Best(int repeats, Action body, Backend backend, bool deviceTime = false)
    {
        double best = double.MaxValue;
        using var timer = deviceTime && backend is CudaBackend cuda ? new CudaTimer(cuda) : null;
        for (int r = 0; r < repeats; r++)
        {
            backend.Synchronize();
            if (timer is not null)
            {
                timer.Start();
                body();
                best = Math.Min(best, timer.Stop());
                continue;
            }
            var sw = Stopwatch.StartNew();
            body();
            backend.Synchronize();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    private static ModelBench Measure(Backend backend, string model, int batch, int steps, bool swaOnly, Action<string> log, bool profile)
    {
        using var net = ModelZoo.Create(model, 10, backend, swaOnly ? 2 : batch, seed: 1);
        if (swaOnly) return SwaUpdate(backend, net, log) with { Model = model, Params = net.ParameterCount, Batch = batch };
        using var sgd = new Sgd(net, 0.9f, 5e-4f);
        using var step = new TrainingStep(net, sgd);
        var rng = new Random(1);
        var x = new float[batch * 3 * 32 * 32];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        backend.Upload<float>(x, net.Input(batch));
        backend.Upload<int>(Enumerable.Range(0, batch).Select(i => i % 10).ToArray(), step.Labels);

        ulong s = 0;
        for (int i = 0; i < 2; i++) step.Run(batch, 0.01f, s++);
        double train = Best(3, () => { for (int i = 0; i < steps; i++) step.Run(batch, 0.01f, s++); }, backend);
        double trainRate = steps * batch / train;
        log($"  train step: {trainRate:F0} images/s");

        for (int i = 0; i < 2; i++) net.Forward(batch, RunMode.Eval);
        double eval = Best(3, () => { for (int i = 0; i < steps; i++) net.Forward(batch, RunMode.Eval); }, backend);
        double evalRate = steps * batch / eval;
        log($"  eval: {evalRate:F0} images/s");

        // BN recompute over a synthetic training set of steps*batch images (the real pass, loader included).
        int count = Math.Max(batch * 2, steps * batch);
        var (train0, _) = SyntheticCifar.Generate(count, 10, 3);
        using var data = new DeviceDataset(train0, backend);
        using var loader = new BatchLoader(data, batch, true, new AugmentSpec(), 1);
        BatchNormRecompute.Run(net, loader, 0);
        double bn = Best(3, () => BatchNormRecompute.Run(net, loader, 0), backend);
        double bnRate = count / bn;
        log($"  BN recompute: {bnRate:F0} images/s ({trainRate / bnRate:P0} of an epoch's time)");

        if (profile)
        {
            Profiled(backend, $"{model} training step x{steps}", () => { for (int i = 0; i < steps; i++) step.Run(batch, 0.01f, s++); }, log);
            Profiled(backend, $"{model} eval forward x{steps}", () => { for (int i = 0; i < steps; i++) net.Forward(batch, RunMode.Eval); }, log);
            Profiled(backend, $"{model} BN recompute over {count} images", () => BatchNormRecompute.Run(net, loader, 0), log);
        }

        return SwaUpdate(backend, net, log) with
        {
            Model = model,
            Params = net.ParameterCount,
            Batch = batch,
            TrainImagesPerS = trainRate,
            EvalImagesPerS = evalRate,
            BnRecomputeImagesPerS = bnRate,
            BnRecomputeEpochFraction = trainRate / bnRate,
        };
    }

    /// <summary>Runs <paramref name="body"/> once with every op timed and logs the per-op table.</summary>
    private static void Profiled(Backend backend, string what, Action body, Action<string> log)
    {
        var profiler = new OpProfiler();
        backend.Synchronize();
        backend.Profiler = profiler;
        var sw = Stopwatch.StartNew();
        try { body(); backend.Synchronize(); }
        finally { backend.Profiler = null; }
        log($"  profile of {what} ({sw.Elapsed.TotalMilliseconds:F0} ms wall, ops synchronised one by one):");
        foreach (string line in profiler.Report().Split(Environment.NewLine)) log("    " + line);
    }

    private static ModelBench SwaUpdate(Backend backend, Network net, Action<string> log)
    {
        using var avg = net.CreateParameterArena();
        using var square = net.CreateParameterArena();
        using var column = net.CreateParameterArena();
        var all = net.Parameters.All;
        long bytes = all.Length * sizeof(float);
        int reps = backend is CudaBackend ? 200 : 20;
        using var plan = backend.PrepareAverage([new AveragePair(avg.All, all)]);
        backend.AverageUpdate(plan, 1f);
        backend.SwagCollect(all, avg.All, square.All, column.All, 1f);
        // Warm every pass to the JIT's optimised code first (a few timed calls alone would time its first tier).
        for (int round = 0; round < 2; round++)
        {
            for (int i = 0; i < 60; i++) { backend.AverageUpdate(plan, 0.5f); backend.SwagCollect(all, avg.All, square.All, column.All, 0.5f); backend.Copy(all, avg.All); }
            backend.Synchronize();
            Thread.Sleep(250);
        }
        // On a GPU all are timed with CUDA events (device time of back-to-back launches, no host sync in between).
        double update = Best(3, () => { for (int i = 0; i < reps; i++) backend.AverageUpdate(plan, 0.5f); }, backend, deviceTime: true) / reps;
        double copy = Best(3, () => { for (int i = 0; i < reps; i++) backend.Copy(all, avg.All); }, backend, deviceTime: true) / reps;
        double updateGbs = 3.0 * bytes / update / 1e9, copyGbs = 2.0 * bytes / copy / 1e9;
        log($"  SWA update: {update * 1e3:F3} ms ({updateGbs:F1} GB/s); plain copy {copy * 1e3:F3} ms ({copyGbs:F1} GB/s)");
        // SWAG's collection over the same arena: mean, mean of squares and one deviation column in one pass (6 floats moved per weight, the SWA update 3).
        double swag = Best(3, () => { for (int i = 0; i < reps; i++) backend.SwagCollect(all, avg.All, square.All, column.All, 0.5f); }, backend, deviceTime: true) / reps;
        log($"  SWAG collection: {swag * 1e3:F3} ms ({6.0 * bytes / swag / 1e9:F1} GB/s), {swag / update:F2}x the SWA update");
        // One sample with a full ring of 20 columns, against a copy of the bytes it moves (mean, mean of squares and
        // 20 columns read, the sample written) at the copy bandwidth measured above: the target is 1.5x.
        const int rank = 20;
        double sample, sampleOverCopy;
        using (var moments = new SwagMoments(backend, all.Length, rank))
        {
            for (int i = 0; i < rank; i++) moments.Collect(all, avg.All);
            using var output = net.CreateParameterArena();
            for (int i = 0; i < 3; i++) moments.Sample(avg.All, output.All, i, 1);
            int sampleReps = backend is CudaBackend ? 20 : 2;
            sample = Best(3, () => { for (int i = 0; i < sampleReps; i++) moments.Sample(avg.All, output.All, i, 1); }, backend, deviceTime: true) / sampleReps;
            double copyOfItsBytes = (rank + 3.0) * bytes / (copyGbs * 1e9);
            sampleOverCopy = sample / copyOfItsBytes;
            log($"  SWAG sample (20 columns): {sample * 1e3:F3} ms, {sampleOverCopy:F2}x a copy of its {(rank + 3.0) * bytes / 1e9:F2} GB");
        }
        return new ModelBench
        {
            SwaUpdateMs = update * 1e3,
            SwaUpdateGbPerS = updateGbs,
            CopyMs = copy * 1e3,
            CopyGbPerS = copyGbs,
            SwaUpdateFractionOfCopy = updateGbs / copyGbs,
            SwagCollectMs = swag * 1e3,
            SwagCollectOverSwaUpdate = swag / update,
            SwagSampleMs = sample * 1e3,
            SwagSampleOverCopyOfItsBytes = sampleOverCopy,
        };
    }
}
