using BenchmarkDotNet.Attributes;
using CudaSwa.Averaging;
using CudaSwa.Models;
using CudaSwa.Tensors;

namespace CudaSwa.Bench;

/// <summary>
/// One SWAG weight sample with a full ring of 20 deviation columns (mean, mean of squares and the
/// 20 columns read, the sample written: 23 arena-sized streams, 92 bytes per weight) against a
/// plain copy of the arena (8 bytes per weight) in the same run; the GB/s column puts both on
/// the same scale, so copy GB/s ÷ sample GB/s is the sample's cost in copies of its bytes.
/// </summary>
public class SwagSampleBench : IWork
{
    private const int Rank = 20;

    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";
    [Params("resnet20", "wrn28x10")] public string Model { get; set; } = "resnet20";

    public static IEnumerable<string> Devices() => Backends.Available();

    private Backend _b = null!;
    private Arena _mean = null!, _current = null!, _output = null!;
    private SwagMoments _moments = null!;
    private int _sample;

    [GlobalSetup]
    public void Setup()
    {
        _b = Backends.Create(Device);
        var layout = ModelZoo.Describe(Model, 10).Parameters;
        _mean = new Arena(layout, _b);
        _current = new Arena(layout, _b);
        _output = new Arena(layout, _b);
        _moments = new SwagMoments(_b, layout.Length, Rank);
        var rnd = new Random(1);
        var host = new float[layout.Length];
        for (int k = 0; k < Rank; k++)
        {
            for (int i = 0; i < host.Length; i++) host[i] = (float)rnd.NextDouble();
            _current.FromHost(host);
            _b.AverageUpdate(_mean.All, _current.All, 1f / (k + 1));
            _moments.Collect(_current.All, _mean.All);
        }
        // Warm both forms to the JIT's optimised code (BenchmarkDotNet's few invocations would time tier 0).
        for (int round = 0; round < 2; round++)
        {
            for (int k = 0; k < 30; k++) { PlainCopy(); SwagSample(); }
            Thread.Sleep(300);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _moments.Dispose();
        _mean.Dispose();
        _current.Dispose();
        _output.Dispose();
        Backends.Release(_b);
    }

    [Benchmark(Baseline = true)]
    public void PlainCopy()
    {
        _b.Copy(_current.All, _output.All);
        _b.Synchronize();
    }

    [Benchmark]
    public void SwagSample()
    {
        _moments.Sample(_mean.All, _output.All, _sample++, 7);
        _b.Synchronize();
    }

    public (double Amount, string Unit) Work(string method)
    {
        long values = ModelZoo.Describe(Model, 10).Parameters.Length;
        return (method == nameof(PlainCopy) ? 8.0 * values : (Rank + 3) * 4.0 * values, "GB/s");
    }
}
