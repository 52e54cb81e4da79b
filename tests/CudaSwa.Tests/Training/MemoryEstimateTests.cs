using CudaSwa.Averaging;
using CudaSwa.Cpu;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tests.Cli;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Training;

/// <summary>
/// The memory estimate made before a run allocates: its activation part equals what the network
/// then allocates, its parts grow with what the options keep, and a run that cannot fit is refused
/// with exit 4 before anything is written.
/// </summary>
public class MemoryEstimateTests
{
    [TestCase("resnet8", 64)]
    [TestCase("resnet20", 32)]
    public void TheActivationPartIsWhatTheNetworkAllocates(string model, int batch)
    {
        var (train, test) = CudaSwa.Data.SyntheticCifar.Generate(100, 20, 1);
        var options = new TrainingOptions { Model = model, BatchSize = batch, Epochs = 2, SwaStart = 1 };
        var estimate = MemoryEstimate.For(ModelZoo.Describe(model, 10), options, train, test, deviceIsHost: true);
        using var backend = new CpuBackend();
        using var net = ModelZoo.Describe(model, 10).Build(backend, batch);
        long part = estimate.Parts.Single(p => p.Part.StartsWith("activations", StringComparison.Ordinal)).Bytes;
        // The network aligns each node's slot; the estimate does not: within a fraction of a percent.
        Assert.That((double)part, Is.EqualTo((double)net.ActivationBytes).Within(0.5).Percent);
        long weights = estimate.Parts.Single(p => p.Part.StartsWith("weights", StringComparison.Ordinal)).Bytes;
        Assert.That(weights, Is.GreaterThanOrEqualTo(4 * net.ParameterCount * sizeof(float)), "weights, gradients, momentum, folded copy");
    }

    [Test]
    public void WhatTheMethodKeepsIsCounted()
    {
        var (train, test) = CudaSwa.Data.SyntheticCifar.Generate(100, 20, 1);
        var builder = ModelZoo.Describe("resnet8", 10);
        long p = builder.Parameters.Length * sizeof(float);
        MemoryEstimate Of(TrainingOptions o) => MemoryEstimate.For(ModelZoo.Describe("resnet8", 10), o, train, test, deviceIsHost: true);
        var sgd = Of(new TrainingOptions { Model = "resnet8", SgdOnly = true, SwaStart = null });
        var swa = Of(new TrainingOptions { Model = "resnet8", Epochs = 4, SwaStart = 2 });
        var swag = Of(new TrainingOptions { Model = "resnet8", Epochs = 4, SwaStart = 2, Average = AveragingKind.Swag, SwagRank = 20 });
        Assert.That(swa.DeviceBytes, Is.GreaterThan(sgd.DeviceBytes + p), "the average");
        Assert.That(swag.DeviceBytes - swa.DeviceBytes, Is.GreaterThanOrEqualTo(21 * p), "SWAG's square mean and 20 deviations");
        Assert.That(swag.HostBytes - swa.HostBytes, Is.GreaterThanOrEqualTo(2 * 21 * p), "and their staging copies at a checkpoint");
    }

    [Test]
    public void ARunThatCannotFitIsRefusedWithExit4BeforeAnythingIsWritten()
    {
        string dir = CliRunner.TempDir("memory");
        try
        {
            MemoryEstimate.HostAvailableForTests = () => 4L << 20;
            var r = CliRunner.Run("train", "--device", "cpu", "--model", "resnet8", "--synthetic-train", "200", "--synthetic-test", "100", "--out", dir);
            Assert.That(r.ExitCode, Is.EqualTo(4), r.All);
            Assert.That(r.Error, Does.Contain("needs about").And.Contain("4 MiB is available").And.Contain("activations"));
            Assert.That(Directory.Exists(dir), Is.False, "nothing written");
        }
        finally
        {
            MemoryEstimate.HostAvailableForTests = null;
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
