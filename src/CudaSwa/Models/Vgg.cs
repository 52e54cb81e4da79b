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
    private static readonly int[] Config16 = [64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1];

    /// <summary>
    /// Describes VGG-16 (BN after each convolution when <paramref name="batchNorm"/>) for
    /// <paramref name="numClasses"/> classes, with drop probability <paramref name="dropout"/> in the classifier.
    /// </summary>
    public static NetworkBuilder Describe(bool batchNorm, int numClasses, float dropout = 0.5f)
    {
        var b = new NetworkBuilder(batchNorm ? "vgg16bn" : "vgg16");
        var x = b.Input;
        int index = 0;
        foreach (int v in Config16)
        {
            if (v < 0)
            {
                x = b.MaxPool(x);
                index++;
                continue;
            }
            x = b.Conv(x, $"features.{index}", v, 3, 1, 1, bias: true);
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
        x = b.Relu(b.Linear(x, "classifier.1", 512));
        x = b.Dropout(x, dropout);
        x = b.Relu(b.Linear(x, "classifier.4", 512));
        b.Linear(x, "classifier.6", numClasses);
        return b;
    }
}
