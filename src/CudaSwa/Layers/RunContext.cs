using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>What a layer needs for one pass: backend, batch, mode, the bound arenas and per-step keys.</summary>
public sealed class RunContext
{
    internal RunContext(Network network) => Network = network;

    /// <summary>The network being run.</summary>
    public Network Network { get; }
    /// <summary>The network's backend.</summary>
    public Backend Backend => Network.Backend;
    /// <summary>The parameter arena currently bound to the network.</summary>
    public Arena Parameters => Network.Parameters;
    /// <summary>The network's parameter-gradient arena.</summary>
    public Arena Gradients => Network.Gradients;
    /// <summary>The BN running-statistics arena currently bound to the network.</summary>
    public Arena Buffers => Network.Buffers;

    /// <summary>Samples in this pass (1 to the network's maximum batch); layers work on prefixes of this length.</summary>
    public int Batch { get; internal set; }
    /// <summary>How this pass runs: training, evaluation or BN recompute.</summary>
    public RunMode Mode { get; internal set; }

    /// <summary>Running-average factor BN uses in <see cref="RunMode.BatchNormRecompute"/>.</summary>
    public double BatchNormFactor { get; internal set; }

    /// <summary>Step counter that keys the dropout masks (same value in forward and backward).</summary>
    public ulong Step { get; internal set; }

    /// <summary>In a data-parallel training pass with synchronised BN: the exchange that gives BN the whole batch's statistics; otherwise null.</summary>
    internal IBatchNormSync? BatchNormSync { get; set; }
}
