namespace CudaSwa.Tensors;

/// <summary>One (average, current) pair of a running-average update (<see cref="Backend.PrepareAverage"/>).</summary>
/// <param name="Average">The running average, updated in place.</param>
/// <param name="Current">The current values, read only; same length as <paramref name="Average"/>.</param>
public readonly record struct AveragePair(Tensor Average, Tensor Current);
