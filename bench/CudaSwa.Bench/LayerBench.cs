using BenchmarkDotNet.Attributes;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tensors;

namespace CudaSwa.Bench;

/// <summary>
/// Every distinct convolution shape of resnet20/110, preresnet164 and wrn28x10 at batch 128: forward,
/// backward data, backward filter, on the CPU with each algorithm pinned ("rule" = the default choice;
/// an algorithm that cannot run a shape falls back to the rule there, so such rows repeat the rule's).
/// </summary>
public class ConvolutionBench : IWork
{
    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";
    [ParamsSource(nameof(Shapes))] public string Shape { get; set; } = "";
    [ParamsSource(nameof(Algorithms))] public string Algorithm { get; set; } = "rule";

    public static IEnumerable<string> Devices() => Backends.Available();

    public static IEnumerable<string> Algorithms() => ["rule", "gemm", "direct", "winograd2", "winograd4"];

    /// <summary>"CxHxW->K rR sS" for each distinct conv of the four models.</summary>
    public static IEnumerable<string> Shapes()
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var m in new[] { "resnet20", "resnet110", "preresnet164", "wrn28x10" })
        {
            using var cpu = new Cpu.CpuBackend();
            using var net = ModelZoo.Create(m, 10, cpu, 1);
            foreach (var c in net.Layers.OfType<Conv2d>())
            {
                var g = c.Geometry(1);
                set.Add($"{g.C}x{g.H}x{g.W}->{g.K} r{g.R} s{g.Stride} p{g.Padding}");
            }
        }
        return set;
    }

    private ConvGeometry G()
    {
        var parts = Shape.Split(' ');
        var chw = parts[0].Split("->")[0].Split('x').Select(int.Parse).ToArray();
        int k = int.Parse(parts[0].Split("->")[1]);
        int r = int.Parse(parts[1][1..]), s = int.Parse(parts[2][1..]), p = int.Parse(parts[3][1..]);
        return new ConvGeometry(128, chw[0], chw[1], chw[2], k, r, r, s, p);
    }

    private Backend _b = null!;
    private Tensor _x, _w, _y;
    private ConvSpec _spec;

    [GlobalSetup]
    public void Setup()
    {
        _b = Backends.Create(Device);
        var g = G();
        _spec = new ConvSpec(g.Stride, g.Padding);
        _x = _b.AllocateTensor(TensorShape.Nchw(g.N, g.C, g.H, g.W));
        _w = _b.AllocateTensor(TensorShape.Nchw(g.K, g.C, g.R, g.S));
        _y = _b.AllocateTensor(TensorShape.Nchw(g.N, g.K, g.P, g.Q));
        _b.PrepareConvolution(g);
        if (_b is Cpu.CpuBackend cpu) cpu.Convolution.Choice.Override = Algorithm;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _x.Buffer.Dispose(); _w.Buffer.Dispose(); _y.Buffer.Dispose();
        Backends.Release(_b);
    }

    [Benchmark] public void Forward() { _b.ConvolutionForward(_x, _w, _y, _spec); _b.Synchronize(); }
    [Benchmark] public void BackwardData() { _b.ConvolutionBackwardData(_y, _w, _x, _spec, false); _b.Synchronize(); }
    [Benchmark] public void BackwardFilter() { _b.ConvolutionBackwardFilter(_x, _y, _w, _spec); _b.Synchronize(); }

    public (double Amount, string Unit) Work(string method) => (G().Flops, "GFLOP/s");
}

/// <summary>Batch norm training forward and backward on the three resnet20 activation shapes at batch 128.</summary>
public class BatchNormBench : IWork
{
    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";
    [Params("16x32x32", "32x16x16", "64x8x8")] public string Shape { get; set; } = "16x32x32";

    public static IEnumerable<string> Devices() => Backends.Available();

    private Backend _b = null!;
    private Tensor _x, _y, _g, _beta, _rm, _rv, _sm, _si, _dg, _db;

    [GlobalSetup]
    public void Setup()
    {
        _b = Backends.Create(Device);
        var d = Shape.Split('x').Select(int.Parse).ToArray();
        _x = _b.AllocateTensor(TensorShape.Nchw(128, d[0], d[1], d[2]));
        _y = _b.AllocateTensor(TensorShape.Nchw(128, d[0], d[1], d[2]));
        Tensor C() => _b.AllocateTensor(new TensorShape(d[0]));
        (_g, _beta, _rm, _rv, _sm, _si, _dg, _db) = (C(), C(), C(), C(), C(), C(), C(), C());
        _b.Fill(_g, 1); _b.Fill(_rv, 1); _b.Fill(_x, 0.5f);
        _b.BatchNormForwardTraining(_x, _y, _g, _beta, _rm, _rv, 0.1, 1e-5, _sm, _si);
    }

    [GlobalCleanup]
    public void Cleanup() => Backends.Release(_b);

    [Benchmark] public void ForwardTraining() { _b.BatchNormForwardTraining(_x, _y, _g, _beta, _rm, _rv, 0.1, 1e-5, _sm, _si); _b.Synchronize(); }
    [Benchmark] public void Backward() { _b.BatchNormBackward(_x, _y, _g, _sm, _si, _x, _dg, _db, 1e-5, false); _b.Synchronize(); }

    // Forward reads x twice (statistics, then normalisation) and writes y; backward reads x and dy twice and writes dx.
    public (double Amount, string Unit) Work(string method) => ((method == nameof(Backward) ? 5 : 3) * 4.0 * Elements(), "GB/s");

    private long Elements() => Shape.Split('x').Select(long.Parse).Aggregate(128L, (a, v) => a * v);
}
