using System.Diagnostics;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tensors;

namespace CudaSwa.Benchmarks;

/// <summary>
/// One convolution shape and pass as `cudaswa bench --only conv` measured it: the rate of every
/// algorithm the device can run it with, and the one the backend chooses.
/// </summary>
/// <param name="Shape">"CxHxW->K RxS sN pN".</param>
/// <param name="Models">The models that have this convolution.</param>
/// <param name="Batch">Images per call.</param>
/// <param name="Stride">Stride.</param>
/// <param name="Padding">Zero padding.</param>
/// <param name="Pass">forward, backward_data or backward_filter.</param>
/// <param name="Gflop">Multiply-adds x 2 of one call, in GFLOP (the direct convolution's count, whatever the algorithm).</param>
/// <param name="GflopsByAlgorithm">GFLOP/s of each algorithm, best of the repeats.</param>
/// <param name="Chosen">The algorithm the backend runs for this shape and pass.</param>
public sealed record ConvolutionRate(string Shape, string Models, int Batch, int Stride, int Padding, string Pass, double Gflop, Dictionary<string, double> GflopsByAlgorithm, string Chosen);

/// <summary>
/// Every distinct convolution of a set of models, in all three passes, timed with every
/// algorithm the backend has (on the CPU: im2col GEMM, direct, Winograd F(2x2) and F(4x4) where
/// they apply), beside the machine's measured FMA ceiling: a roofline of rates in one run.
/// </summary>
internal static class ConvolutionRoofline
{
    /// <summary>The distinct convolution geometries of <paramref name="models"/> at <paramref name="batch"/>, with the models each belongs to.</summary>
    public static IReadOnlyList<(ConvGeometry Geometry, string Models)> Shapes(Backend backend, IReadOnlyList<string> models, int batch)
    {
        var order = new List<ConvGeometry>();
        var owners = new Dictionary<ConvGeometry, List<string>>();
        foreach (var model in models)
        {
            using var net = ModelZoo.Create(model, 10, backend, 1);
            foreach (var conv in net.Layers.OfType<Conv2d>())
            {
                var g = conv.Geometry(batch);
                if (!owners.TryGetValue(g, out var list)) { owners[g] = list = []; order.Add(g); }
                if (!list.Contains(model)) list.Add(model);
            }
        }
        return order.Select(g => (g, string.Join(",", owners[g]))).ToList();
    }

    /// <summary>Times every shape, pass and algorithm (three untimed warm-up calls, then the best of <paramref name="repeats"/>).</summary>
    public static List<ConvolutionRate> Run(Backend backend, IReadOnlyList<string> models, int batch, int repeats, Action<string> log)
    {
        var rows = new List<ConvolutionRate>();
        var rng = new Random(1);
        foreach (var (g, owners) in Shapes(backend, models, batch))
        {
            var x = Random(backend, TensorShape.Nchw(g.N, g.C, g.H, g.W), rng);
            var w = Random(backend, TensorShape.Nchw(g.K, g.C, g.R, g.S), rng);
            var y = Random(backend, TensorShape.Nchw(g.N, g.K, g.P, g.Q), rng);
            var dx = backend.AllocateTensor(TensorShape.Nchw(g.N, g.C, g.H, g.W));
            var dw = backend.AllocateTensor(TensorShape.Nchw(g.K, g.C, g.R, g.S));
            try
            {
                backend.PrepareConvolution(g);
                var spec = new ConvSpec(g.Stride, g.Padding);
                string shape = $"{g.C}x{g.H}x{g.W}->{g.K} {g.R}x{g.S} s{g.Stride} p{g.Padding}";
                foreach (var pass in new[] { ConvPass.Forward, ConvPass.BackwardData, ConvPass.BackwardFilter })
                {
                    var rates = new Dictionary<string, double>();
                    string chosen;
                    var algorithms = backend.ConvolutionAlgorithms(g);
                    if (algorithms.Count > 0)
                    {
                        foreach (var a in algorithms)
                            rates[a] = g.Flops / 1e9 / Best(repeats, backend, () => backend.ConvolutionPassWith(a, pass, x, w, y, dx, dw, g));
                        chosen = backend.ConvolutionAlgorithmFor(pass, x, w, y, dx, dw, g);
                    }
                    else
                    {
                        chosen = backend.Name;
                        rates[chosen] = g.Flops / 1e9 / Best(repeats, backend, () =>
                        {
                            if (pass == ConvPass.Forward) backend.ConvolutionForward(x, w, y, spec);
                            else if (pass == ConvPass.BackwardData) backend.ConvolutionBackwardData(y, w, dx, spec, false);
                            else backend.ConvolutionBackwardFilter(x, y, dw, spec);
                        });
                    }
                    string passName = pass switch { ConvPass.Forward => "forward", ConvPass.BackwardData => "backward_data", _ => "backward_filter" };
                    rows.Add(new ConvolutionRate(shape, owners, g.N, g.Stride, g.Padding, passName, g.Flops / 1e9, rates, chosen));
                    log($"  {shape,-26} {passName,-16} " + string.Join("  ", rates.Select(r => $"{r.Key} {r.Value,6:F1}")) + $" GFLOP/s; runs {chosen}");
                }
            }
            finally
            {
                foreach (var t in new[] { x, w, y, dx, dw }) t.Buffer.Dispose();
            }
        }
        return rows;
    }

    private static Tensor Random(Backend backend, TensorShape shape, Random rng)
    {
        var t = backend.AllocateTensor(shape);
        var data = new float[t.Length];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        backend.Upload<float>(data, t);
        return t;
    }

    private static double Best(int repeats, Backend backend, Action body)
    {
        // Three untimed calls: scratch grown, weights transformed, the JIT's optimised code in place.
        for (int i = 0; i < 3; i++) body();
        backend.Synchronize();
        double best = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            long start = Stopwatch.GetTimestamp();
            body();
            backend.Synchronize();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return best;
    }
}
