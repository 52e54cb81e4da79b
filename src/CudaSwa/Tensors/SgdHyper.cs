namespace CudaSwa.Tensors;

/// <summary>SGD hyper-parameters of one step (PyTorch semantics, dampening 0).</summary>
/// <param name="LearningRate">Step size of this step.</param>
/// <param name="Momentum">Momentum factor (0 for plain SGD).</param>
/// <param name="WeightDecay">L2 penalty added to the gradient (decay * w).</param>
/// <param name="Nesterov">Nesterov momentum.</param>
public readonly record struct SgdHyper(float LearningRate, float Momentum, float WeightDecay, bool Nesterov);
