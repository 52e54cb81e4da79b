using CudaSwa.Layers;

namespace CudaSwa.Models;

/// <summary>
/// Wide ResNet (Zagoruyko and Komodakis 2016) as in the SWA reference code: depth 6n+4, widen
/// factor k, stages of 16k, 32k, 64k channels; pre-activation wide-basic blocks
/// (BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3 with the stride on the second conv), convolutions
/// with bias, a 1x1 projection with bias where the shape changes; final BN-ReLU, average pooling,
/// linear. WRN-28-10 has 36.5M parameters.
/// </summary>
public static class WideResNet
{
    /// <summary>
    /// Describes WRN-<paramref name="depth"/>-<paramref name="widen"/> (depth 6n+4) for <paramref name="numClasses"/>
    /// classes, with drop probability <paramref name="dropout"/> between the two convolutions of each block (0: no dropout).
    /// </summary>
    public static NetworkBuilder Describe(int depth, int widen, int numClasses, float dropout = 0f)
    {
        if ((depth - 4) % 6 != 0 || depth < 10)
            throw new ArgumentException($"Wide ResNet depth must be 6n+4 (10, 16, 22, 28, ...); got {depth}.", nameof(depth));
        int n = (depth - 4) / 6;
        var b = new NetworkBuilder($"wrn{depth}x{widen}");
        var x = b.Conv(b.Input, "conv1", 16, 3, 1, 1, bias: true);
        int[] widths = [16 * widen, 32 * widen, 64 * widen];
        for (int stage = 0; stage < 3; stage++)
        {
            for (int block = 0; block < n; block++)
            {
                int stride = stage > 0 && block == 0 ? 2 : 1;
                x = WideBasic(b, x, $"layer{stage + 1}.{block}", widths[stage], stride, dropout);
            }
        }
        x = b.Relu(b.BatchNorm(x, "bn1"));
        x = b.GlobalAvgPool(x);
        b.Linear(x, "linear", numClasses);
        return b;
    }

    private static Node WideBasic(NetworkBuilder b, Node x, string name, int planes, int stride, float dropout)
    {
        var o = b.Conv(b.Relu(b.BatchNorm(x, name + ".bn1")), name + ".conv1", planes, 3, 1, 1, bias: true);
        if (dropout > 0) o = b.Dropout(o, dropout);
        o = b.Conv(b.Relu(b.BatchNorm(o, name + ".bn2")), name + ".conv2", planes, 3, stride, 1, bias: true);
        var shortcut = stride != 1 || x.Channels != planes ? b.Conv(x, name + ".shortcut.0", planes, 1, stride, 0, bias: true) : x;
        return b.Add(o, shortcut);
    }
}
