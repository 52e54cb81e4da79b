using CudaSwa.Layers;

namespace CudaSwa.Models;

/// <summary>
/// The SWA paper's CIFAR VGG-16: 13 3x3 convolutions with bias (64, 64, M, 128, 128, M,
/// 256 x3, M, 512 x3, M, 512 x3, M), optionally each followed by BN, ReLU after each; then a
/// 512-512 classifier: Dropout(0.5), Linear, ReLU, Dropout(0.5), Linear, ReLU, Linear.
/// Names follow the SWA reference code's nn.Sequential indices (features.0, classifier.1, ...).
/// </summary>
public static class Vgg
{
    /// <summary>VGG-16's layers in units of the first width (64 in the paper); -1 is a 2x2 max pool.</summary>
    private static readonly int[] Config16 = [1, 1, -1, 2, 2, -1, 4, 4, 4, -1, 8, 8, 8, -1, 8, 8, 8, -1];

    /// <summary>
    /// Describes VGG-16 (BN after each convolution when <paramref name="batchNorm"/>) for
    /// <paramref name="numClasses"/> classes, with drop probability <paramref name="dropout"/> in the
    /// classifier, the first convolutions <paramref name="width"/> channels wide (64 in the paper), the
    /// last and the classifier 8x that (512). Smaller widths give the same structure at a fraction of
    /// the size (the tests' reference fixtures use them).
    /// </summary>
    public static NetworkBuilder Describe(bool batchNorm, int numClasses, float dropout = 0.5f, int width = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        var b = new NetworkBuilder(width == 64 ? (batchNorm ? "vgg16bn" : "vgg16") : $"vgg16{(batchNorm ? "bn" : "")}-w{width}");
        var x = b.Input;
        int index = 0;
        foreach (int units in Config16)
        {
            if (units < 0)
            {
                x = b.MaxPool(x);
                index++;
                continue;
            }
            x = b.Conv(x, $"features.{index}", units * width, 3, 1, 1, bias: true);
            index++;
            if (batchNorm)
            {
                x = b.BatchNorm(x, $"features.{index}");
                index++;
            }
            x = b.Relu(x);
            index++;
        }
        x = b.Dropout(x, dropout);
        x = b.Relu(b.Linear(x, "classifier.1", 8 * width));
        x = b.Dropout(x, dropout);
        x = b.Relu(b.Linear(x, "classifier.4", 8 * width));
        b.Linear(x, "classifier.6", numClasses);
        return b;
    }
}
