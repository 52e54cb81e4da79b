namespace CudaSwa.Layers;

/// <summary>How a forward pass runs.</summary>
public enum RunMode
{
    /// <summary>Training: batch statistics in BN (running stats updated with momentum), dropout on, gradients follow.</summary>
    Train,
    /// <summary>Evaluation: BN uses running statistics, dropout off.</summary>
    Eval,
    /// <summary>BN recompute: batch statistics with a caller-given running-average factor, dropout off, no backward.</summary>
    BatchNormRecompute,
}
