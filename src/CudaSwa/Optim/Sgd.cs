using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Optim;

/// <summary>
/// SGD with momentum, optional Nesterov and L2 weight decay, PyTorch semantics
/// (g += wd*w; v = m*v + g; w -= lr*v), as ONE fused pass over the network's flat parameter,
/// gradient and velocity arenas. Weight decay applies to every parameter, BN and biases
/// included, as in the SWA reference code.
/// </summary>
public sealed class Sgd : IDisposable
{
    /// <summary>
    /// SGD over the network's own parameters (<paramref name="network"/>), with <paramref name="momentum"/> in [0, 1),
    /// L2 <paramref name="weightDecay"/> (at least 0) and Nesterov momentum when <paramref name="nesterov"/>
    /// (which needs momentum above 0). Allocates the velocity arena, zeroed.
    /// </summary>
    public Sgd(Network network, float momentum, float weightDecay, bool nesterov = false)
    {
        ArgumentNullException.ThrowIfNull(network);
        if (!(momentum >= 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), $"Momentum must be in [0, 1); got {momentum}.");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), $"Weight decay must be >= 0; got {weightDecay}.");
        if (nesterov && momentum == 0) throw new ArgumentException("Nesterov momentum needs momentum > 0.", nameof(nesterov));
        Network = network;
        Momentum = momentum;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        Velocity = network.CreateParameterArena();
    }

    /// <summary>The network whose own parameters are stepped.</summary>
    public Network Network { get; }
    /// <summary>Momentum factor, in [0, 1).</summary>
    public float Momentum { get; }
    /// <summary>L2 weight decay, added to the gradient as wd*w.</summary>
    public float WeightDecay { get; }
    /// <summary>Whether Nesterov momentum is used.</summary>
    public bool Nesterov { get; }

    /// <summary>The momentum buffers, one arena with the parameters' layout (checkpointed with them).</summary>
    public Arena Velocity { get; }

    /// <summary>
    /// One fused step over every parameter with <paramref name="learningRate"/> (finite, at least 0), from the
    /// gradients in the network's gradient arena. Throws <see cref="InvalidOperationException"/> while the
    /// network is bound to other parameters than its own.
    /// </summary>
    public void Step(float learningRate)
    {
        if (!(learningRate >= 0) || float.IsInfinity(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), $"Learning rate must be a finite number >= 0; got {learningRate}.");
        if (!ReferenceEquals(Network.Parameters, Network.OwnParameters))
            throw new InvalidOperationException("SGD steps the network's own parameters; it is currently bound to another arena (e.g. the SWA average).");
        Network.Backend.SgdStep(Network.Parameters.All, Network.Gradients.All, Velocity.All,
            new SgdHyper(learningRate, Momentum, WeightDecay, Nesterov));
    }

    /// <summary>Frees the velocity arena.</summary>
    public void Dispose() => Velocity.Dispose();
}
