using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>Test loss and top-1 accuracy of whatever weights a network is bound to (inference mode).</summary>
public sealed class Evaluator : IDisposable
{
    private readonly Tensor _labels;
    private readonly Tensor _stats;

    /// <summary>Allocates label and statistics buffers for batches of <paramref name="network"/>.</summary>
    public Evaluator(Network network)
    {
        Network = network;
        _labels = network.Backend.AllocateTensor(new TensorShape(network.MaxBatch), DType.Int32);
        _stats = network.Backend.AllocateTensor(new TensorShape(2));
    }

    /// <summary>The network evaluated, with whatever arenas are bound to it.</summary>
    public Network Network { get; }

    /// <summary>
    /// Runs the data of <paramref name="loader"/> once through the network in evaluation mode; returns the mean
    /// loss per sample and the top-1 accuracy as a fraction. The loader's batches must fit the network's batch size.
    /// </summary>
    public (double Loss, double Accuracy) Evaluate(BatchLoader loader)
    {
        if (loader.BatchSize > Network.MaxBatch)
            throw new ArgumentException($"Loader batches of {loader.BatchSize} exceed the network's batch size {Network.MaxBatch}.");
        var backend = Network.Backend;
        backend.Fill(_stats, 0f);
        loader.BeginEpoch(0);
        for (int i = 0; i < loader.BatchCount; i++)
        {
            int b = loader.Load(i, Network.Input(Network.MaxBatch), _labels);
            Network.Forward(b, RunMode.Eval);
            backend.SoftmaxCrossEntropy(Network.Logits(b), _labels.WithBatch(b), default, _stats);
        }
        var s = backend.ToArray(_stats);
        return (s[0] / loader.Data.Count, s[1] / loader.Data.Count);
    }

    /// <summary>Frees the evaluator's buffers.</summary>
    public void Dispose()
    {
        _labels.Buffer.Dispose();
        _stats.Buffer.Dispose();
    }
}
