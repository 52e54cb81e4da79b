using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Models;

/// <summary>
/// Whole training steps on each backend: the same step from the same state gives the same bits
/// (deterministic algorithms, no atomics in the sums), and a batch smaller than the network was
/// built for — the last batch of an epoch — runs on prefixes of the buffers and gives exactly
/// what a network built for that batch gives (on a GPU: convolution plans made on the spot for
/// the new shape, the shared workspace grown if needed).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class TrainingStepTests(string backend) : BackendTest(backend)
{
    private static void Same(float[] actual, float[] expected, string what) => Emulation.EmulatedKernelTests.Same(actual, expected, what);

    private void Load(TrainingStep step, int batch, float[] x, int[] labels)
    {
        B.Upload<float>(x, step.Network.Input(batch));
        B.Upload<int>(labels, step.Labels.Slice(0, batch));
    }

    [Test]
    public void ATrainingStepRunTwiceFromTheSameStateIsBitIdentical()
    {
        int batch = 32;
        using var net = ModelZoo.Create("resnet8", 10, B, batch, (ulong)Rng.Seed);
        using var sgd = new Sgd(net, 0.9f, 5e-4f);
        using var step = new TrainingStep(net, sgd);
        var x = Rng.Floats(batch * 3 * 32 * 32, -2, 2);
        var labels = Rng.Ints(batch, 0, 10);
        var weights = net.Parameters.ToHost();
        var buffers = net.Buffers.ToHost();
        var velocity = Rng.Floats((int)sgd.Velocity.All.Length, -0.1f, 0.1f);

        (float[] W, float[] V, float[] Stats, (double, double) Read) Once()
        {
            net.Parameters.FromHost(weights);
            net.Buffers.FromHost(buffers);
            sgd.Velocity.FromHost(velocity);
            step.ResetStats();
            Load(step, batch, x, labels);
            step.Run(batch, 0.1f, 7);
            return (net.Parameters.ToHost(), sgd.Velocity.ToHost(), net.Buffers.ToHost(), step.ReadStats());
        }

        var first = Once();
        var second = Once();
        Same(second.W, first.W, $"weights after the step ({Rng})");
        Same(second.V, first.V, "velocity after the step");
        Same(second.Stats, first.Stats, "BN running statistics after the step");
        Assert.That(second.Read, Is.EqualTo(first.Read), "loss sum and correct count");
        Assert.That(first.W, Is.Not.EqualTo(weights), "the step changed the weights");
    }

    [Test]
    public void ASmallerLastBatchEqualsTheSameStepInANetworkBuiltForIt()
    {
        int full = 64, last = 37;
        ulong seed = (ulong)Rng.Seed;
        using var big = ModelZoo.Create("resnet8", 10, B, full, seed);
        using var small = ModelZoo.Create("resnet8", 10, B, last, seed);
        Assert.That(big.Parameters.ToHost(), Is.EqualTo(small.Parameters.ToHost()), "same seed, same initial weights");
        using var sgdBig = new Sgd(big, 0.9f, 5e-4f);
        using var sgdSmall = new Sgd(small, 0.9f, 5e-4f);
        using var stepBig = new TrainingStep(big, sgdBig);
        using var stepSmall = new TrainingStep(small, sgdSmall);
        var x = Rng.Floats(last * 3 * 32 * 32, -2, 2);
        var labels = Rng.Ints(last, 0, 10);
        Load(stepBig, last, x, labels);
        Load(stepSmall, last, x, labels);
        stepBig.Run(last, 0.1f, 3);
        stepSmall.Run(last, 0.1f, 3);
        Same(big.Parameters.ToHost(), small.Parameters.ToHost(), $"weights after a {last}-sample step ({Rng})");
        Same(big.Buffers.ToHost(), small.Buffers.ToHost(), "BN running statistics");
        Assert.That(stepBig.ReadStats(), Is.EqualTo(stepSmall.ReadStats()), "loss sum and correct count");

        // And back to the full batch: the network still runs its own shape.
        var xf = Rng.Floats(full * 3 * 32 * 32, -2, 2);
        Load(stepBig, full, xf, Rng.Ints(full, 0, 10));
        Assert.DoesNotThrow(() => stepBig.Run(full, 0.1f, 4));
        Assert.That(big.Parameters.ToHost().All(float.IsFinite), Is.True);
    }
}
