using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>What a layer needs for one pass: backend, batch, mode, the bound arenas and per-step keys.</summary>
public sealed class RunContext
{
    internal RunContext(Network network) => Network = network;

    public Network Network { get; }
    public Backend Backend => Network.Backend;
    public Arena Parameters => Network.Parameters;
    public Arena Gradients => Network.Gradients;
    public Arena Buffers => Network.Buffers;

    public int Batch { get; internal set; }
    public RunMode Mode { get; internal set; }

    /// <summary>Running-average factor BN uses in <see cref="RunMode.RecomputeBatchNorm"/>.</summary>
    public double BatchNormFactor { get; internal set; }

    /// <summary>Step counter that keys the dropout masks (same value in forward and backward).</summary>
    public ulong Step { get; internal set; }
}
