using CudaSwa.Averaging;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>LAWA (the mean of the last K averaged models) against the SWA average and a float64 reference.</summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class LatestWeightsTests(string backend) : BackendTest(backend)
{
    private (Layers.Network Net, List<float[]> Snapshots) Feed(WeightAverager[] averagers, int models)
    {
        var net = averagers[0].Network;
        int len = (int)net.Parameters.All.Length;
        var snapshots = new List<float[]>();
        for (int i = 0; i < models; i++)
        {
            var w = Rng.Floats(len, -2, 2);
            snapshots.Add(w);
            net.Parameters.FromHost(w);
            foreach (var a in averagers) a.Update();
        }
        return (net, snapshots);
    }

    [TestCase(4, 4)]
    [TestCase(3, 7)]
    public void WhileNothingIsDroppedLawaIsTheSwaAverageBitForBit(int models, int k)
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        using var swa = new WeightAverager(net);
        using var lawa = new WeightAverager(net, new AveragingOptions { Kind = AveragingKind.Lawa, LawaK = k });
        Feed([swa, lawa], models);
        Assert.That(lawa.Count, Is.EqualTo(models));
        Assert.That(lawa.ParametersToHost(), Is.EqualTo(swa.ParametersToHost()), $"({Rng})");
    }

    [TestCase(1, 5)]
    [TestCase(3, 8)]
    public void LawaIsTheMeanOfTheLastKModels(int k, int models)
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        using var swa = new WeightAverager(net);
        using var lawa = new WeightAverager(net, new AveragingOptions { Kind = AveragingKind.Lawa, LawaK = k });
        var (_, snapshots) = Feed([swa, lawa], models);
        int len = snapshots[0].Length;
        var expected = new double[len];
        foreach (var s in snapshots.Skip(models - k)) for (int j = 0; j < len; j++) expected[j] += s[j] / (double)k;
        var got = lawa.ParametersToHost();
        Close.Check(got, expected, 1e-6, 1e-6, $"the last {k} of {models} ({Rng})");
        Assert.That(((LatestWeights)lawa.State!).Held, Is.EqualTo(k));
        // The comparison can fail: SWA over all of them is another average.
        double apart = got.Select((v, i) => Math.Abs(v - swa.ParametersToHost()[i])).Max();
        Assert.That(apart, Is.GreaterThan(1e-2), "LAWA and SWA differ once models are dropped");
    }

    [Test]
    public void ARestoredRingGivesTheSameMeanAndContinuesAlike()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        var options = new AveragingOptions { Kind = AveragingKind.Lawa, LawaK = 3 };
        using var first = new WeightAverager(net, options);
        Feed([first], 5);
        var ring = Enumerable.Range(0, 3).Select(i => B.ToArray(((LatestWeights)first.State!).Slot(i))).ToArray();

        using var second = new WeightAverager(net, options);
        for (int i = 0; i < 3; i++) B.Upload<float>(ring[i], ((LatestWeights)second.State!).Slot(i));
        second.Restore(first.ParametersToHost(), first.Buffers.ToHost(), first.Count);
        ((LatestWeights)second.State!).Restore(first.Count);
        Assert.That(second.ParametersToHost(), Is.EqualTo(first.ParametersToHost()), "the mean rebuilt from the restored ring");
        Feed([first, second], 2);
        Assert.That(second.ParametersToHost(), Is.EqualTo(first.ParametersToHost()), "and the two go on alike");
    }

    [Test]
    public void LawaRefusesBadSettings()
    {
        using var net = ModelZoo.Create("resnet8", 10, B, 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightAverager(net, new AveragingOptions { Kind = AveragingKind.Lawa, LawaK = 0 }));
        Assert.Throws<ArgumentException>(() => new WeightAverager(net, new AveragingOptions { Kind = AveragingKind.Lawa, AverageBatchNormStatistics = true }));
    }
}
