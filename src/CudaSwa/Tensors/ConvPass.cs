namespace CudaSwa.Tensors;

/// <summary>One of the three passes of a convolution: forward, backward data (dx), backward filter (dw).</summary>
internal enum ConvPass { Forward, BackwardData, BackwardFilter }
