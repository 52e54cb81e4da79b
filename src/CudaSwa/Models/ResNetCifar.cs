using CudaSwa.Layers;

namespace CudaSwa.Models;

/// <summary>
/// He et al. 2016 ("Deep Residual Learning", Sec. 4.2) CIFAR ResNets: depth 6n+2, a 3x3 conv
/// with 16 filters, three stages of n basic blocks with 16, 32, 64 filters (stride 2 at the
/// start of stages 2 and 3), global average pooling and a linear classifier. Where the shape
/// changes the shortcut is a 1x1 convolution + BN (projection, option B).
/// Names follow the common PyTorch port: conv1, bn1, layer{s}.{b}.conv1/bn1/conv2/bn2,
/// layer{s}.{b}.shortcut.0/1, fc.
/// </summary>
public static class ResNetCifar
{
    /// <summary>Describes the CIFAR ResNet of <paramref name="depth"/> = 6n+2 layers (n at least 1) for <paramref name="numClasses"/> classes.</summary>
    public static NetworkBuilder Describe(int depth, int numClasses)
    {
        if (depth < 8 || (depth - 2) % 6 != 0)
            throw new ArgumentException($"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...); got {depth}.", nameof(depth));
        int n = (depth - 2) / 6;
        var b = new NetworkBuilder($"resnet{depth}");
        var x = b.Relu(b.BatchNorm(b.Conv(b.Input, "conv1", 16, 3, 1, 1), "bn1"));
        int[] widths = [16, 32, 64];
        for (int stage = 0; stage < 3; stage++)
        {
            for (int block = 0; block < n; block++)
            {
                int stride = stage > 0 && block == 0 ? 2 : 1;
                x = BasicBlock(b, x, $"layer{stage + 1}.{block}", widths[stage], stride);
            }
        }
        x = b.GlobalAvgPool(x);
        b.Linear(x, "fc", numClasses);
        return b;
    }

    private static Node BasicBlock(NetworkBuilder b, Node x, string name, int planes, int stride)
    {
        var o = b.Relu(b.BatchNorm(b.Conv(x, name + ".conv1", planes, 3, stride, 1), name + ".bn1"));
        o = b.BatchNorm(b.Conv(o, name + ".conv2", planes, 3, 1, 1), name + ".bn2");
        var shortcut = x;
        if (stride != 1 || x.Channels != planes)
            shortcut = b.BatchNorm(b.Conv(x, name + ".shortcut.0", planes, 1, stride, 0), name + ".shortcut.1");
        return b.Relu(b.Add(o, shortcut));
    }
}
