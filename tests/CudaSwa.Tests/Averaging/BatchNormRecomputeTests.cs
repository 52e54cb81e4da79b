using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>
/// BN recompute against statistics computed independently in float64 from the pre-BN
/// activations of every sample, with an uneven last batch (10 samples in batches of 4, 4, 2).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class BatchNormRecomputeTests(string backend) : BackendTest(backend)
{
    private const int Samples = 10, Batch = 4;

    private Network BuildNet(out Node preA, out Node preB)
    {
        var b = new NetworkBuilder("tiny", 3, 8, 8);
        preA = b.Conv(b.Input, "conv_a", 4, 3, 1, 1);
        var x = b.Relu(b.BatchNorm(preA, "bn_a"));
        preB = b.Conv(x, "conv_b", 5, 3, 2, 1);
        x = b.Relu(b.BatchNorm(preB, "bn_b"));
        b.Linear(b.GlobalAvgPool(x), "fc", 3);
        return b.Build(B, Batch, seed: (ulong)Rng.Seed);
    }

    private (DeviceDataset Data, BatchLoader Loader) Data()
    {
        var images = new byte[Samples * 3 * 8 * 8];
        Rng.Random.NextBytes(images);
        var ds = new ImageDataset("random", images, Rng.Ints(Samples, 0, 3), 3, 3, 8, 8);
        var device = new DeviceDataset(ds, B);
        var spec = new AugmentSpec { Crop = false, Flip = false };
        return (device, new BatchLoader(device, Batch, shuffle: false, spec, seed: 1));
    }

    /// <summary>Replays the recompute's batches and gathers each channel's pre-BN values over all samples.</summary>
    private List<double>[] Gather(Network net, BatchLoader loader, Node node)
    {
        var values = Enumerable.Range(0, node.Channels).Select(_ => new List<double>()).ToArray();
        var labels = B.AllocateTensor(new TensorShape(Batch), DType.Int32);
        loader.BeginEpoch(0);
        int hw = node.Height * node.Width;
        for (int i = 0; i < loader.BatchCount; i++)
        {
            int b = loader.Load(i, net.Input(Batch), labels);
            net.Forward(b, RunMode.BatchNormRecompute, net.LastBatchNormLayer, 0.0); // factor 0: statistics untouched
            var v = Get(node.Value.WithBatch(b));
            for (int j = 0; j < v.Length; j++) values[(j / hw) % node.Channels].Add(v[j]);
        }
        return values;
    }

    private static double Mean(List<double> v) => v.Average();
    private static double UnbiasedVar(List<double> v) { double m = v.Average(); return v.Sum(t => (t - m) * (t - m)) / (v.Count - 1); }

    [Test]
    public void ExactModeGivesPopulationMeanAndUnbiasedVariance()
    {
        using var net = BuildNet(out var preA, out var preB);
        var (data, loader) = Data();
        using (data) using (loader)
        {
            B.Fill(net.Buffers.All, 123f); // stale statistics must be reset
            BatchNormRecompute.Run(net, loader, epochKey: 0, BatchNormRecomputeMode.Exact);
            foreach (var (node, bn) in new[] { (preA, "bn_a"), (preB, "bn_b") })
            {
                var values = Gather(net, loader, node);
                Close.Check(Get(net.Buffers[bn + ".running_mean"]), values.Select(Mean).ToArray(), 1e-6, 1e-5, $"{bn} mean ({Rng})");
                Close.Check(Get(net.Buffers[bn + ".running_var"]), values.Select(UnbiasedVar).ToArray(), 1e-6, 1e-5, $"{bn} unbiased variance ({Rng})");
            }
        }
    }

    /// <summary>
    /// A closed form that needs no forward pass of ours: BN straight on the input, images that are
    /// constant per channel, so the population's mean and unbiased variance (over N*H*W values,
    /// divided by N*H*W - 1) follow from the normalised pixel values alone.
    /// </summary>
    [Test]
    public void ExactModeOnConstantImagesIsTheClosedForm()
    {
        int count = 6, h = 8, w = 8;
        var builder = new NetworkBuilder("bn-on-input", 3, h, w);
        builder.Linear(builder.GlobalAvgPool(builder.BatchNorm(builder.Input, "bn")), "fc", 3);
        using var net = builder.Build(B, Batch, seed: 1);
        var pixels = Rng.Ints(count * 3, 0, 256);
        var images = new byte[count * 3 * h * w];
        for (int i = 0; i < count * 3; i++) Array.Fill(images, (byte)pixels[i], i * h * w, h * w);
        using var data = new DeviceDataset(new ImageDataset("constant", images, new int[count], 3, 3, h, w), B);
        var spec = new AugmentSpec { Crop = false, Flip = false };
        using var loader = new BatchLoader(data, Batch, shuffle: true, spec, seed: (ulong)Rng.Seed);
        B.Fill(net.Buffers.All, 123f);
        BatchNormRecompute.Run(net, loader, epochKey: 0, BatchNormRecomputeMode.Exact);
        var mean = new double[3];
        var variance = new double[3];
        for (int c = 0; c < 3; c++)
        {
            var u = Enumerable.Range(0, count).Select(i => (pixels[i * 3 + c] / 255.0 - spec.Mean[c]) / spec.Std[c]).ToArray();
            mean[c] = u.Average();
            variance[c] = u.Sum(v => (v - mean[c]) * (v - mean[c])) * h * w / (count * h * w - 1.0);
        }
        Close.Check(Get(net.Buffers["bn.running_mean"]), mean, 1e-6, 1e-5, $"population mean ({Rng})");
        Close.Check(Get(net.Buffers["bn.running_var"]), variance, 1e-6, 2e-5, $"unbiased population variance, divided by N*H*W - 1 ({Rng})");
    }

    [Test]
    public void SampleWeightedModeIsTheReferenceCodesCumulativeAverage()
    {
        using var net = BuildNet(out var preA, out _);
        var (data, loader) = Data();
        using (data) using (loader)
        {
            BatchNormRecompute.Run(net, loader, 0, BatchNormRecomputeMode.SampleWeighted);
            // Per batch: mean_i and unbiased var_i over b_i*H*W values; weights b_i / N.
            var perBatch = new List<(int B, List<double>[] V)>();
            var labels = B.AllocateTensor(new TensorShape(Batch), DType.Int32);
            loader.BeginEpoch(0);
            int hw = preA.Height * preA.Width;
            for (int i = 0; i < loader.BatchCount; i++)
            {
                int b = loader.Load(i, net.Input(Batch), labels);
                // The first convolution alone, as the recompute runs it (in evaluation it would write the
                // batch norm's output directly: the BN is folded into it).
                net.Forward(b, RunMode.BatchNormRecompute, stopAfterLayer: 0);
                var v = Get(preA.Value.WithBatch(b));
                var ch = Enumerable.Range(0, preA.Channels).Select(_ => new List<double>()).ToArray();
                for (int j = 0; j < v.Length; j++) ch[(j / hw) % preA.Channels].Add(v[j]);
                perBatch.Add((b, ch));
            }
            var mean = Enumerable.Range(0, preA.Channels).Select(c => perBatch.Sum(p => p.B * Mean(p.V[c])) / Samples).ToArray();
            var var = Enumerable.Range(0, preA.Channels).Select(c => perBatch.Sum(p => p.B * UnbiasedVar(p.V[c])) / Samples).ToArray();
            Close.Check(Get(net.Buffers["bn_a.running_mean"]), mean, 1e-6, 1e-5, $"mean ({Rng})");
            Close.Check(Get(net.Buffers["bn_a.running_var"]), var, 1e-6, 1e-5, $"sample-weighted variance ({Rng})");
        }
    }

    [Test]
    public void RecomputeNeedsNoGradientsAndStopsAfterTheLastBatchNorm()
    {
        using var net = BuildNet(out _, out _);
        var (data, loader) = Data();
        using (data) using (loader)
        {
            B.Fill(net.Gradients.All, float.NaN);
            B.Fill(net.OutputNode.Value, float.NaN);
            BatchNormRecompute.Run(net, loader, 0);
            Assert.That(Get(net.Gradients.All), Is.All.NaN, "gradient arena untouched");
            Assert.That(Get(net.OutputNode.Value), Is.All.NaN, "layers after the last BN not run");
        }
    }
}
