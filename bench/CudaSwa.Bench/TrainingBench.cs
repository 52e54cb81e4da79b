using BenchmarkDotNet.Attributes;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Training;

namespace CudaSwa.Bench;

/// <summary>One full resnet20 training step at batch 128, and the BN-recompute pass over 1,024 images.</summary>
public class TrainingBench : IWork
{
    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";

    public static IEnumerable<string> Devices() => Backends.Available();

    private const int Batch = 128, RecomputeImages = 1024;
    private Backend _b = null!;
    private Network _net = null!;
    private Sgd _sgd = null!;
    private TrainingStep _step = null!;
    private DeviceDataset _data = null!;
    private BatchLoader _loader = null!;
    private ulong _s;

    [GlobalSetup]
    public void Setup()
    {
        _b = Backends.Create(Device);
        _net = ModelZoo.Create("resnet20", 10, _b, Batch, 1);
        _sgd = new Sgd(_net, 0.9f, 5e-4f);
        _step = new TrainingStep(_net, _sgd);
        var rnd = new Random(1);
        _b.Upload<float>(Enumerable.Range(0, Batch * 3072).Select(_ => (float)rnd.NextDouble()).ToArray(), _net.Input(Batch));
        _b.Upload<int>(Enumerable.Range(0, Batch).Select(i => i % 10).ToArray(), _step.Labels);
        var (train, _) = SyntheticCifar.Generate(RecomputeImages, 10, 1);
        _data = new DeviceDataset(train, _b);
        _loader = new BatchLoader(_data, Batch, true, new AugmentSpec(), 1);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _loader.Dispose(); _data.Dispose(); _step.Dispose(); _sgd.Dispose(); _net.Dispose();
        Backends.Release(_b);
    }

    [Benchmark]
    public void TrainStepResnet20()
    {
        _step.Run(Batch, 0.01f, _s++);
        _b.Synchronize();
    }

    [Benchmark]
    public void BnRecomputeResnet20()
    {
        BatchNormRecompute.Run(_net, _loader, 0);
        _b.Synchronize();
    }

    /// <summary>Images per second, reported in the throughput column.</summary>
    public (double Amount, string Unit) Work(string method) => (method == nameof(TrainStepResnet20) ? Batch : RecomputeImages, "img/s");
}
