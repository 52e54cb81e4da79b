using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Evaluation;

/// <summary>Test loss and top-1 accuracy of whatever weights a network is bound to (inference mode).</summary>
public sealed class Evaluator : IDisposable
{
    private readonly Tensor _labels;
    private readonly Tensor _stats;
    private Tensor _probabilities;

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
        var s = Pass(loader, keepProbabilities: false);
        return (s[0] / loader.Data.Count, s[1] / loader.Data.Count);
    }

    /// <summary>
    /// <see cref="Evaluate"/> plus the calibration of the predicted probabilities (NLL, ECE, Brier,
    /// reliability bins), in the same single pass: the softmax of every batch is kept on the device
    /// and read back once. The loader must visit its data in order (no shuffling).
    /// </summary>
    public (double Loss, double Accuracy, CalibrationMetrics Calibration) EvaluateCalibrated(BatchLoader loader)
    {
        var probabilities = Predict(loader, out var stats);
        var calibration = CalibrationMetrics.Compute(probabilities, loader.Data.Source.Labels, Network.NumClasses);
        return (stats[0] / loader.Data.Count, stats[1] / loader.Data.Count, calibration);
    }

    /// <summary>
    /// The predicted probabilities (softmax of the logits) of every sample of <paramref name="loader"/>,
    /// one row of classes per sample in the loader's order, which must be the data's (no shuffling).
    /// </summary>
    public float[] Predict(BatchLoader loader) => Predict(loader, out _);

    private float[] Predict(BatchLoader loader, out float[] stats)
    {
        if (loader.Shuffle) throw new ArgumentException("Predictions are matched to labels by position: the loader must not shuffle.", nameof(loader));
        stats = Pass(loader, keepProbabilities: true);
        return Network.Backend.ToArray(_probabilities);
    }

    /// <summary>
    /// One pass over the loader in evaluation mode: the loss sum and correct count (read back), and,
    /// when asked, the softmax of every batch into its rows of the probabilities buffer.
    /// </summary>
    private float[] Pass(BatchLoader loader, bool keepProbabilities)
    {
        if (loader.BatchSize > Network.MaxBatch)
            throw new ArgumentException($"Loader batches of {loader.BatchSize} exceed the network's batch size {Network.MaxBatch}.");
        var backend = Network.Backend;
        int k = Network.NumClasses, n = loader.Data.Count;
        if (keepProbabilities && (_probabilities.IsNull || _probabilities.Length != (long)n * k))
        {
            _probabilities.Buffer?.Dispose();
            _probabilities = backend.AllocateTensor(new TensorShape(n, k));
        }
        backend.Fill(_stats, 0f);
        loader.BeginEpoch(0);
        for (int i = 0; i < loader.BatchCount; i++)
        {
            int b = loader.Load(i, Network.Input(Network.MaxBatch), _labels);
            Network.Forward(b, RunMode.Eval);
            backend.SoftmaxCrossEntropy(Network.Logits(b), _labels.WithBatch(b), default, _stats);
            if (keepProbabilities)
                backend.Softmax(Network.Logits(b), new Tensor(_probabilities.Buffer, _probabilities.Offset + (long)i * loader.BatchSize * k, new TensorShape(b, k)));
        }
        return backend.ToArray(_stats);
    }

    /// <summary>Frees the evaluator's buffers.</summary>
    public void Dispose()
    {
        _probabilities.Buffer?.Dispose();
        _labels.Buffer.Dispose();
        _stats.Buffer.Dispose();
    }
}
