using CudaSwa.Averaging;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>The fused SWA/EMA update over real model arenas against closed forms.</summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class WeightAveragerTests(string backend) : BackendTest(backend)
{
    private static double RelativeError(float[] actual, double[] expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++) { num += (actual[i] - expected[i]) * (actual[i] - expected[i]); den += expected[i] * expected[i]; }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(7)]
    public void SwaArenaIsTheArithmeticMeanOfTheSnapshots(int k)
    {
        using var net = ModelZoo.Create("resnet20", 10, B, 2);
        using var avg = new WeightAverager(net);
        int len = (int)net.Parameters.All.Length;
        var snapshots = new List<float[]>();
        for (int i = 0; i < k; i++)
        {
            var w = Rng.Floats(len, -2, 2);
            snapshots.Add(w);
            net.Parameters.FromHost(w);
            avg.Update();
        }
        var mean = new double[len];
        foreach (var s in snapshots) for (int j = 0; j < len; j++) mean[j] += s[j] / (double)k;
        var got = avg.ParametersToHost();
        Assert.That(avg.Count, Is.EqualTo(k));
        Assert.That(RelativeError(got, mean), Is.LessThanOrEqualTo(1e-6), $"relative error ({Rng})");
        Close.Check(got, mean, 1e-6, 1e-5, $"elementwise ({Rng})");
    }

    [Test]
    public void EmaEqualsItsClosedForm()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        const double decay = 0.9;
        using var avg = new WeightAverager(net, new AveragingOptions { Kind = AveragingKind.Ema, EmaDecay = decay });
        int len = (int)net.Parameters.All.Length, k = 6;
        var snapshots = new List<float[]>();
        for (int i = 0; i < k; i++)
        {
            var w = Rng.Floats(len, -1, 1);
            snapshots.Add(w);
            net.Parameters.FromHost(w);
            avg.Update();
        }
        // First update copies; then ema_k = decay^(k-1) w_1 + sum_{i>=2} (1-decay) decay^(k-i) w_i.
        var expected = new double[len];
        for (int j = 0; j < len; j++)
        {
            double e = Math.Pow(decay, k - 1) * snapshots[0][j];
            for (int i = 2; i <= k; i++) e += (1 - decay) * Math.Pow(decay, k - i) * snapshots[i - 1][j];
            expected[j] = e;
        }
        Assert.That(RelativeError(avg.ParametersToHost(), expected), Is.LessThanOrEqualTo(1e-6), $"({Rng})");
    }

    [Test]
    public void EmaWithWarmupFollowsTheRampedDecay()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        double decay = 0.95 + 0.04 * Rng.Floats(1, 0, 1)[0];
        using var avg = new WeightAverager(net, new AveragingOptions { Kind = AveragingKind.Ema, EmaDecay = decay, EmaWarmup = true });
        int len = (int)net.Parameters.All.Length, k = 12;
        // Float64 reference of the recursion with decay_n = min(decay, (1+n)/(10+n)) after n updates (the first copies).
        var expected = new double[len];
        var plain = new double[len];
        for (int n = 0; n < k; n++)
        {
            var w = Rng.Floats(len, -1, 1);
            net.Parameters.FromHost(w);
            avg.Update();
            double d = n == 0 ? 0 : Math.Min(decay, (1.0 + n) / (10.0 + n));
            for (int j = 0; j < len; j++)
            {
                expected[j] = d * expected[j] + (1 - d) * w[j];
                plain[j] = n == 0 ? w[j] : decay * plain[j] + (1 - decay) * w[j];
            }
        }
        var got = avg.ParametersToHost();
        Assert.That(RelativeError(got, expected), Is.LessThanOrEqualTo(2e-6), $"({Rng}, decay {decay})");
        // The warm-up matters: without it the average still holds most of the first model.
        Assert.That(RelativeError(got, plain), Is.GreaterThan(0.1), "warm-up made no difference");
    }

    [TestCase(0.999, 0, 1.0)]
    [TestCase(0.999, 1, 1 - 2.0 / 11)]
    [TestCase(0.999, 8, 1 - 9.0 / 18)]
    [TestCase(0.9, 80, 0.1)]
    [TestCase(0.9, 1000, 0.1)]
    public void EmaWarmupUpdateWeightIsOneMinusTheRampedDecay(double decay, long averaged, double weight) =>
        Assert.That(new AveragingOptions { Kind = AveragingKind.Ema, EmaDecay = decay, EmaWarmup = true }.UpdateWeight(averaged), Is.EqualTo(weight).Within(1e-7));

    [Test]
    public void MultiBufferEntryPointMatchesTheFlatArena()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        using var flat = new WeightAverager(net);
        // The same parameters kept as separate buffers, the way an embedding app might hold them.
        var entries = net.ParameterLayout.Entries;
        var averages = entries.Select(e => B.AllocateTensor(e.Shape)).ToArray();
        var currents = entries.Select(e => B.AllocateTensor(e.Shape)).ToArray();
        var multi = new MultiBufferAverager(B, averages.Select((a, i) => new AveragePair(a, currents[i])).ToArray());
        for (int step = 0; step < 4; step++)
        {
            var w = Rng.Floats((int)net.Parameters.All.Length, -1, 1);
            net.Parameters.FromHost(w);
            for (int i = 0; i < entries.Count; i++)
                B.Upload<float>(w.AsSpan((int)entries[i].Offset, (int)entries[i].Length), currents[i]);
            flat.Update();
            multi.Update();
        }
        var flatHost = flat.ParametersToHost();
        for (int i = 0; i < entries.Count; i++)
            Assert.That(Get(averages[i]), Is.EqualTo(flatHost.AsSpan((int)entries[i].Offset, (int)entries[i].Length).ToArray()), entries[i].Name);
        Assert.That(multi.Count, Is.EqualTo(flat.Count));
    }

    [Test]
    public void HostPlacementGivesTheSameAverage()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        using var device = new WeightAverager(net);
        using var host = new WeightAverager(net, new AveragingOptions { Placement = AveragePlacement.Host });
        for (int i = 0; i < 3; i++)
        {
            net.Parameters.FromHost(Rng.Floats((int)net.Parameters.All.Length));
            device.Update();
            host.Update();
        }
        Assert.That(host.ParametersToHost(), Is.EqualTo(device.ParametersToHost()));
        Assert.That(Get(host.Parameters.All), Is.EqualTo(device.ParametersToHost()), "uploaded device copy of the host average");
    }

    [Test]
    public void BindingTheAverageLeavesTrainingWeightsAlone()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        using var avg = new WeightAverager(net);
        var w = Rng.Floats((int)net.Parameters.All.Length);
        net.Parameters.FromHost(w);
        avg.Update();
        net.Parameters.FromHost(Rng.Floats((int)net.Parameters.All.Length));
        var training = net.Parameters.ToHost();
        using (avg.Bind())
        {
            Assert.That(net.Parameters, Is.SameAs(avg.Parameters));
            Assert.That(net.Parameters.ToHost(), Is.EqualTo(w));
        }
        Assert.That(net.Parameters, Is.SameAs(net.OwnParameters));
        Assert.That(net.Parameters.ToHost(), Is.EqualTo(training));
    }

    [Test]
    public void AveragingBatchNormStatisticsIsOptIn()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        using var averaged = new WeightAverager(net, new AveragingOptions { AverageBatchNormStatistics = true });
        using var recomputed = new WeightAverager(net);
        var stats = Rng.Floats((int)net.Buffers.All.Length, 0.5f, 1.5f);
        net.Buffers.FromHost(stats);
        averaged.Update();
        recomputed.Update();
        Assert.That(averaged.Buffers.ToHost(), Is.EqualTo(stats), "averaged statistics after one update are a copy");
        var reset = recomputed.Buffers.ToHost();
        foreach (var e in net.BufferLayout.Entries)
        {
            float want = e.Role == ArenaRole.BatchNormRunningVar ? 1f : 0f;
            Assert.That(reset.AsSpan((int)e.Offset, (int)e.Length).ToArray(), Is.All.EqualTo(want), e.Name);
        }
    }
}
