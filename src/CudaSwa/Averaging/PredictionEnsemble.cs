using CudaSwa.Data;
using CudaSwa.Evaluation;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// The prediction-ensemble baseline of the SWA literature (snapshot ensembles, FGE): the softmax
/// outputs of saved snapshots on a fixed evaluation set, averaged. Only the running mean of the
/// predictions is kept (N x classes floats on the device), plus the current snapshot's
/// predictions; a snapshot is added by evaluating the network as it is now and folding all its
/// predictions in with ONE fused averaging update (on a GPU: one launch over a table built once).
/// </summary>
public sealed class PredictionEnsemble : IDisposable
{
    private readonly Tensor _mean;
    private readonly Tensor _probs;
    private readonly Tensor _labels;
    private readonly AveragePlan _fold;

    /// <summary>
    /// Allocates the mean predictions for every sample of <paramref name="evaluation"/> on the network's
    /// backend. The loader must not shuffle, and its batches must fit the network's batch size.
    /// </summary>
    public PredictionEnsemble(Network network, BatchLoader evaluation)
    {
        if (evaluation.Shuffle) throw new ArgumentException("The evaluation loader of an ensemble must not shuffle: predictions are matched to labels by position.", nameof(evaluation));
        if (evaluation.BatchSize > network.MaxBatch)
            throw new ArgumentException($"Evaluation batches of {evaluation.BatchSize} exceed the network's batch size {network.MaxBatch}.", nameof(evaluation));
        Network = network;
        Evaluation = evaluation;
        int n = evaluation.Data.Count, k = network.NumClasses;
        _mean = network.Backend.AllocateTensor(new TensorShape(n, k));
        _probs = network.Backend.AllocateTensor(new TensorShape(n, k));
        _labels = network.Backend.AllocateTensor(new TensorShape(network.MaxBatch), DType.Int32);
        _fold = network.Backend.PrepareAverage([new AveragePair(_mean, _probs)]);
    }

    /// <summary>The network whose snapshots are ensembled.</summary>
    public Network Network { get; }
    /// <summary>The fixed evaluation set, visited in order.</summary>
    public BatchLoader Evaluation { get; }

    /// <summary>Snapshots averaged so far.</summary>
    public int Count { get; private set; }

    /// <summary>Evaluates the network's current weights on the evaluation set and folds the predictions in.</summary>
    public void AddSnapshot()
    {
        var backend = Network.Backend;
        int k = Network.NumClasses;
        Evaluation.BeginEpoch(0);
        for (int i = 0; i < Evaluation.BatchCount; i++)
        {
            int b = Evaluation.Load(i, Network.Input(Network.MaxBatch), _labels);
            Network.Forward(b, RunMode.Eval);
            var rows = new Tensor(_probs.Buffer, _probs.Offset + (long)i * Evaluation.BatchSize * k, new TensorShape(b, k));
            backend.Softmax(Network.Logits(b), rows);
        }
        backend.AverageUpdate(_fold, 1f / (Count + 1));
        Count++;
    }

    /// <summary>Accuracy and mean negative log-likelihood of the averaged predictions.</summary>
    public (double Loss, double Accuracy) Score()
    {
        if (Count == 0) throw new InvalidOperationException("The ensemble has no snapshots yet.");
        var mean = Network.Backend.ToArray(_mean);
        var labels = Evaluation.Data.Source.Labels;
        int k = Network.NumClasses;
        double nll = 0;
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int arg = 0;
            for (int j = 1; j < k; j++) if (mean[i * k + j] > mean[i * k + arg]) arg = j;
            if (arg == labels[i]) correct++;
            nll -= Math.Log(Math.Max(mean[i * k + labels[i]], 1e-12));
        }
        return (nll / labels.Length, (double)correct / labels.Length);
    }

    /// <summary>Accuracy, NLL, ECE, Brier score and reliability bins of the averaged predictions.</summary>
    public CalibrationMetrics Calibration()
    {
        if (Count == 0) throw new InvalidOperationException("The ensemble has no snapshots yet.");
        return CalibrationMetrics.Compute(Network.Backend.ToArray(_mean), Evaluation.Data.Source.Labels, Network.NumClasses);
    }

    /// <summary>The averaged predictions (N x classes) for checkpoints.</summary>
    public float[] Export() => Network.Backend.ToArray(_mean);

    /// <summary>Reloads saved averaged predictions and their snapshot count (resume).</summary>
    public void Restore(ReadOnlySpan<float> mean, int count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count));
        Network.Backend.Upload(mean, _mean);
        Count = count;
    }

    /// <summary>Frees the ensemble's device memory.</summary>
    public void Dispose()
    {
        _fold.Dispose();
        _mean.Buffer.Dispose();
        _probs.Buffer.Dispose();
        _labels.Buffer.Dispose();
    }
}
