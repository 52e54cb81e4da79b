using System.Globalization;
using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Tensors;
using Spectre.Console;

namespace CudaSwa.Cli.Output;

/// <summary>The one-line test-set result that `cudaswa eval` and `cudaswa average` print for a model.</summary>
internal static class TestSetReport
{
    /// <summary>Evaluates <paramref name="network"/> as it is bound on <paramref name="test"/> and prints "LABEL: test accuracy …, NLL, ECE, Brier on N images".</summary>
    public static void EvaluateAndPrint(Network network, ImageDataset test, int batchSize, string label, CliEnvironment env)
    {
        using var testData = new DeviceDataset(test, network.Backend);
        using var testLoader = new BatchLoader(testData, batchSize, false, new AugmentSpec().ForEvaluation(), 0);
        using var evaluator = new Evaluator(network);
        var (loss, acc, calibration) = evaluator.EvaluateCalibrated(testLoader);
        env.Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{label}: test accuracy {100 * acc:F2}% (error {100 * (1 - acc):F2}%), test loss (NLL) {loss:F4}, " +
            $"ECE {100 * calibration.Ece:F2}% ({calibration.Bins.Count} bins), Brier {calibration.Brier:F4} on {test.Count:N0} images"));
    }
}
