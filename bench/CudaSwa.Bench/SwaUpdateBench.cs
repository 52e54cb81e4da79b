using BenchmarkDotNet.Attributes;
using CudaSwa.Models;
using CudaSwa.Tensors;

namespace CudaSwa.Bench;

/// <summary>
/// The SWA update on real model-sized parameter sets: one fused pass over the flat arena, the
/// multi-buffer form (one call, one launch on a GPU, over one pair per parameter tensor), a naive
/// loop with one call per tensor, and a plain copy of the same bytes as the bandwidth baseline;
/// and SWAG's collection pass (mean, mean of squares and one deviation column: twice the bytes of
/// the SWA update) over the same arena.
/// </summary>
public class SwaUpdateBench : IWork
{
    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";
    [Params("resnet20", "resnet110", "wrn28x10")] public string Model { get; set; } = "resnet20";

    public static IEnumerable<string> Devices() => Backends.Available();

    private Backend _b = null!;
    private Arena _avg = null!, _cur = null!, _square = null!, _column = null!;
    private AveragePair[] _pairs = [];
    private long _values;

    [GlobalSetup]
    public void Setup()
    {
        _b = Backends.Create(Device);
        var layout = ModelZoo.Describe(Model, 10).Parameters;
        _avg = new Arena(layout, _b);
        _cur = new Arena(layout, _b);
        var rnd = new Random(1);
        _cur.FromHost(Enumerable.Range(0, (int)_cur.All.Length).Select(_ => (float)rnd.NextDouble()).ToArray());
        _pairs = layout.Entries.Select((e, i) => new AveragePair(_avg[i], _cur[i])).ToArray();
        _values = layout.Length;
        _b.AverageUpdate(_avg.All, _cur.All, 1f);
        _square = new Arena(layout, _b);
        _column = new Arena(layout, _b);
        _b.SwagCollect(_cur.All, _avg.All, _square.All, _column.All, 1f);
        // Steady state, as in training: run every form often enough for tiered compilation to reach
        // its optimised code (the few invocations BenchmarkDotNet makes would otherwise time tier 0).
        for (int round = 0; round < 2; round++)
        {
            for (int k = 0; k < 40; k++) { PlainCopy(); FusedFlatArena(); MultiBuffer(); NaivePerTensorLoop(); SwagCollect(); }
            Thread.Sleep(300);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _avg.Dispose();
        _cur.Dispose();
        _square.Dispose();
        _column.Dispose();
        Backends.Release(_b);
    }

    [Benchmark(Baseline = true)]
    public void PlainCopy()
    {
        _b.Copy(_cur.All, _avg.All);
        _b.Synchronize();
    }

    [Benchmark]
    public void FusedFlatArena()
    {
        _b.AverageUpdate(_avg.All, _cur.All, 0.25f);
        _b.Synchronize();
    }

    [Benchmark]
    public void MultiBuffer()
    {
        _b.AverageUpdate(_pairs, 0.25f);
        _b.Synchronize();
    }

    [Benchmark]
    public void NaivePerTensorLoop()
    {
        foreach (var p in _pairs) _b.AverageUpdate(p.Average, p.Current, 0.25f);
        _b.Synchronize();
    }

    [Benchmark]
    public void SwagCollect()
    {
        _b.SwagCollect(_cur.All, _avg.All, _square.All, _column.All, 0.25f);
        _b.Synchronize();
    }

    public (double Amount, string Unit) Work(string method)
    {
        long values = ModelZoo.Describe(Model, 10).Parameters.Length;
        return (method == nameof(PlainCopy) ? 8.0 * values : method == nameof(SwagCollect) ? 24.0 * values : 12.0 * values, "GB/s");
    }
}

/// <summary>The fused SGD step over the flat arenas (reads w, g, v; writes w, v).</summary>
public class SgdStepBench : IWork
{
    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";
    [Params("resnet20", "wrn28x10")] public string Model { get; set; } = "resnet20";

    public static IEnumerable<string> Devices() => Backends.Available();

    private Backend _b = null!;
    private Arena _w = null!, _g = null!, _v = null!;

    [GlobalSetup]
    public void Setup()
    {
        _b = Backends.Create(Device);
        var layout = ModelZoo.Describe(Model, 10).Parameters;
        _w = new Arena(layout, _b);
        _g = new Arena(layout, _b);
        _v = new Arena(layout, _b);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _w.Dispose(); _g.Dispose(); _v.Dispose();
        Backends.Release(_b);
    }

    [Benchmark]
    public void SgdStep()
    {
        _b.SgdStep(_w.All, _g.All, _v.All, new SgdHyper(0.1f, 0.9f, 5e-4f, false));
        _b.Synchronize();
    }

    public (double Amount, string Unit) Work(string method) => (20.0 * ModelZoo.Describe(Model, 10).Parameters.Length, "GB/s");
}
