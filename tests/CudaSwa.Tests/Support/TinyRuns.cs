using CudaSwa.Data;
using CudaSwa.Layers;

namespace CudaSwa.Tests.Support;

/// <summary>
/// A network and data small enough for whole training runs inside a unit test: a conv–BN–ReLU stem
/// on 16x16 crops of the synthetic CIFAR-like images, global pooling and a linear layer.
/// </summary>
public static class TinyRuns
{
    /// <summary>conv(8) → BN → ReLU → global average pool → linear, named <paramref name="name"/>.</summary>
    public static NetworkBuilder Net(string name, int numClasses)
    {
        var b = new NetworkBuilder(name, height: 16, width: 16);
        Node x = b.Relu(b.BatchNorm(b.Conv(b.Input, "stem.conv", 8, kernel: 3, padding: 1), "stem.bn"));
        x = b.GlobalAvgPool(x);
        b.Linear(x, "fc", numClasses);
        return b;
    }

    /// <summary>Synthetic train and test sets, cropped to 16x16.</summary>
    public static (ImageDataset Train, ImageDataset Test) Data(int train, int test, ulong seed)
    {
        var (a, b) = SyntheticCifar.Generate(trainCount: train, testCount: test, seed: seed);
        return (Crop16(a), Crop16(b));
    }

    /// <summary>The top-left 16x16 quarter of every 32x32 image.</summary>
    public static ImageDataset Crop16(ImageDataset d)
    {
        var images = new byte[d.Count * 3 * 16 * 16];
        for (int i = 0; i < d.Count; i++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 16; y++)
                    d.Images.AsSpan(((i * 3 + c) * 32 + y) * 32, 16).CopyTo(images.AsSpan(((i * 3 + c) * 16 + y) * 16));
        return new ImageDataset(d.Name, images, d.Labels, d.NumClasses, 3, 16, 16);
    }
}
