using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tests.Support;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>
/// A WideResNet-28-10's SWAG state at the default rank 20 — 36.5M weights x 20 deviation columns,
/// 2.9 GB, past what one byte span or one array of bytes holds — checkpointed and restored on the
/// CPU: every column, the mean of squares, the mean and the count come back bit for bit.
/// Needs about 10 GB of memory and 3 GB of disk for a few seconds.
/// </summary>
[Category("Cpu")]
[NonParallelizable]
public class LargeSwagCheckpointTests
{
    [Test]
    public void WideResNetSwagStateIsCheckpointedAndRestored()
    {
        var rng = new Fresh();
        string dir = Cli.CliRunner.TempDir("wrn-swag");
        Directory.CreateDirectory(dir);
        using var cpu = new CpuBackend();
        var options = new AveragingOptions { Kind = AveragingKind.Swag };
        Assert.That(options.SwagRank, Is.EqualTo(20), "the default rank");
        try
        {
            TrainingState state;
            float[] mean, square;
            float[][] columns;
            using (var net = ModelZoo.Create("wrn28x10", 10, cpu, 1, (ulong)rng.Seed))
            using (var sgd = new Sgd(net, 0.9f, 5e-4f))
            using (var avg = new WeightAverager(net, options))
            {
                int n = (int)net.Parameters.All.Length;
                Assert.That((long)n * options.SwagRank * sizeof(float), Is.GreaterThan(2L << 30), "the ring passes 2 GiB");
                var w = net.OwnParameters.ToHost();
                for (int k = 0; k < 3; k++)
                {
                    // Cheap distinct models: the initial weights scaled and shifted by a seeded amount.
                    float scale = 1 + 0.1f * (k + 1), shift = (float)rng.Random.NextDouble() * 1e-3f;
                    net.OwnParameters.FromHost(w.Select(v => v * scale + shift).ToArray());
                    avg.Update();
                }
                state = Checkpoint.Save(dir, new TrainingState { NextEpoch = 3, AveragedModels = avg.Count }, net, sgd, avg, null, "recomputed", keepPrevious: false);
                mean = avg.ParametersToHost();
                square = avg.Swag!.SquareMeanToHost();
                columns = [.. Enumerable.Range(0, 3).Select(k => cpu.ToArray(avg.Swag.Slot(k)))];
            }
            GC.Collect(); // the saving side's arrays of several GB are garbage now: keep the peak down
            string swagFile = Directory.GetFiles(dir, Checkpoint.SwagFile, SearchOption.AllDirectories).First();
            Assert.That(new FileInfo(swagFile).Length, Is.GreaterThan(2L << 30), "the checkpoint's SWAG file passes 2 GiB");

            using var net2 = ModelZoo.Create("wrn28x10", 10, cpu, 1, (ulong)rng.Seed + 1);
            using var sgd2 = new Sgd(net2, 0.9f, 5e-4f);
            using var avg2 = new WeightAverager(net2, options);
            Checkpoint.Restore(dir, Checkpoint.ReadState(dir), net2, sgd2, avg2, null);
            Assert.That(avg2.Count, Is.EqualTo(3));
            Assert.That(avg2.Swag!.Count, Is.EqualTo(3));
            // Every named tensor of the layout (the arena's alignment gaps between them are not saved).
            void Same(float[] actual, float[] expected, string what)
            {
                foreach (var e in net2.ParameterLayout.Entries)
                    Assert.That(actual.AsSpan((int)e.Offset, (int)e.Length).SequenceEqual(expected.AsSpan((int)e.Offset, (int)e.Length)), Is.True, $"{what}: {e.Name}");
            }
            Same(avg2.ParametersToHost(), mean, "the mean");
            Same(avg2.Swag.SquareMeanToHost(), square, "the mean of squares");
            for (int k = 0; k < 3; k++) Same(cpu.ToArray(avg2.Swag.Slot(k)), columns[k], $"deviation column {k}");
            Same(cpu.ToArray(avg2.Swag.Slot(3)), new float[mean.Length], "an unused column (zeros)");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
