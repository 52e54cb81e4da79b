using CudaSwa.Layers;

namespace CudaSwa.Models;

/// <summary>
/// Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks") as the
/// SWA reference code (timgaripov/swa, models/preresnet.py) builds them for the paper's CIFAR
/// experiments: BN-ReLU before each convolution, identity shortcuts, a 1x1 projection conv on the
/// raw block input where the shape changes, final BN-ReLU, global average pooling, linear
/// classifier. Like that code, every depth of at least 44 uses bottleneck blocks (1x1, 3x3, 1x1
/// with expansion 4; depth 9n+2): <c>preresnet110</c> has n = 12 (1,146,842 parameters for 10
/// classes), <c>preresnet164</c> n = 18; below 44, basic blocks (depth 6n+2). The other block
/// kind is available by name: <c>preresnet110-basic</c> is the basic-block network of depth 110
/// (n = 18, 1,730,522 parameters), which is not the one the paper trained.
/// Names follow the SWA reference code: conv1, layer{s}.{b}.bn1/conv1/..., layer{s}.{b}.downsample.0, bn, fc.
/// </summary>
public static class PreResNet
{
    /// <summary>
    /// Describes a pre-activation ResNet of <paramref name="depth"/> layers (6n+2 with basic blocks, 9n+2
    /// with <paramref name="bottleneck"/> blocks) for <paramref name="numClasses"/> classes. It is named
    /// preresnet{depth} when the block kind is the reference code's for that depth (bottleneck from 44
    /// on), and preresnet{depth}-basic or preresnet{depth}-bottleneck otherwise.
    /// </summary>
    public static NetworkBuilder Describe(int depth, bool bottleneck, int numClasses)
    {
        int perBlock = bottleneck ? 9 : 6;
        if (depth < perBlock + 2 || (depth - 2) % perBlock != 0)
            throw new ArgumentException($"Pre-activation ResNet depth must be {perBlock}n+2 for {(bottleneck ? "bottleneck" : "basic")} blocks; got {depth}.", nameof(depth));
        int n = (depth - 2) / perBlock;
        int expansion = bottleneck ? 4 : 1;
        string kind = bottleneck == depth >= 44 ? "" : bottleneck ? "-bottleneck" : "-basic";
        var b = new NetworkBuilder($"preresnet{depth}{kind}");
        var x = b.Conv(b.Input, "conv1", 16, 3, 1, 1);
        int[] widths = [16, 32, 64];
        for (int stage = 0; stage < 3; stage++)
        {
            for (int block = 0; block < n; block++)
            {
                int stride = stage > 0 && block == 0 ? 2 : 1;
                string name = $"layer{stage + 1}.{block}";
                x = bottleneck
                    ? Bottleneck(b, x, name, widths[stage], stride, expansion)
                    : Basic(b, x, name, widths[stage], stride);
            }
        }
        x = b.Relu(b.BatchNorm(x, "bn"));
        x = b.GlobalAvgPool(x);
        b.Linear(x, "fc", numClasses);
        return b;
    }

    private static Node Shortcut(NetworkBuilder b, Node x, string name, int outChannels, int stride) =>
        stride != 1 || x.Channels != outChannels ? b.Conv(x, name + ".downsample.0", outChannels, 1, stride, 0) : x;

    private static Node Basic(NetworkBuilder b, Node x, string name, int planes, int stride)
    {
        var o = b.Conv(b.Relu(b.BatchNorm(x, name + ".bn1")), name + ".conv1", planes, 3, stride, 1);
        o = b.Conv(b.Relu(b.BatchNorm(o, name + ".bn2")), name + ".conv2", planes, 3, 1, 1);
        return b.Add(o, Shortcut(b, x, name, planes, stride));
    }

    private static Node Bottleneck(NetworkBuilder b, Node x, string name, int planes, int stride, int expansion)
    {
        var o = b.Conv(b.Relu(b.BatchNorm(x, name + ".bn1")), name + ".conv1", planes, 1, 1, 0);
        o = b.Conv(b.Relu(b.BatchNorm(o, name + ".bn2")), name + ".conv2", planes, 3, stride, 1);
        o = b.Conv(b.Relu(b.BatchNorm(o, name + ".bn3")), name + ".conv3", planes * expansion, 1, 1, 0);
        return b.Add(o, Shortcut(b, x, name, planes * expansion, stride));
    }
}
