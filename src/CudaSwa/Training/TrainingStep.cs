using CudaSwa.Layers;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>
/// One SGD iteration on the batch that sits in the network's input and in <see cref="Labels"/>:
/// zero the gradient arena, training-mode forward, softmax cross-entropy (loss and accuracy
/// summed into <see cref="Stats"/> on the device), backward, fused SGD step. No host copies.
/// </summary>
public sealed class TrainingStep : IDisposable
{
    /// <summary>Allocates the label and statistics buffers for <paramref name="network"/>, stepped by <paramref name="optimizer"/>.</summary>
    public TrainingStep(Network network, Sgd optimizer)
    {
        Network = network;
        Optimizer = optimizer;
        Labels = network.Backend.AllocateTensor(new TensorShape(network.MaxBatch), DType.Int32);
        Stats = network.Backend.AllocateTensor(new TensorShape(2));
        network.Backend.Fill(Stats, 0f);
    }

    /// <summary>The network trained.</summary>
    public Network Network { get; }
    /// <summary>The optimizer that steps the network's parameters.</summary>
    public Sgd Optimizer { get; }

    /// <summary>Labels of the current batch (int32, one per sample, up to the network's batch size).</summary>
    public Tensor Labels { get; }

    /// <summary>[sum of losses, number correct] accumulated since the last <see cref="ResetStats"/>.</summary>
    public Tensor Stats { get; }

    /// <summary>
    /// One iteration with <paramref name="learningRate"/> on the first <paramref name="batch"/> samples of the
    /// network input and of <see cref="Labels"/>; <paramref name="step"/> keys the dropout masks.
    /// </summary>
    public void Run(int batch, float learningRate, ulong step)
    {
        Gradients(batch, step);
        Optimizer.Step(learningRate);
    }

    /// <summary>
    /// Zeroes the gradient arena, then forward, loss (summed into <see cref="Stats"/>) and backward over the first <paramref name="batch"/>
    /// samples (none: zero gradients); with <paramref name="sync"/>, BN uses the statistics of every rank's shard.
    /// </summary>
    private void Gradients(int batch, ulong step, Distributed.SyncBatchNorm? sync = null)
    {
        Network.ZeroGradients();
        if (batch == 0)
        {
            sync?.TakePartWithoutSamples(Network);
            return;
        }
        if (sync is not null) Network.ForwardShard(batch, step, sync);
        else Network.Forward(batch, RunMode.Train, step: step);
        Network.Backend.SoftmaxCrossEntropy(Network.Logits(batch), Labels.WithBatch(batch), Network.LogitsGradient(batch), Stats);
        Network.Backward(batch);
    }

    /// <summary>
    /// One data-parallel iteration: this rank's <paramref name="shard"/> samples of a global batch of
    /// <paramref name="globalBatch"/>; after backward the gradient arena is summed over the ranks in
    /// ONE all-reduce, each rank weighting its shard-mean gradient by shard/globalBatch so the sum is
    /// the global batch's mean gradient; then every rank takes the same step.
    /// </summary>
    public void RunShard(int shard, int globalBatch, float learningRate, ulong step, Distributed.Collective collective) =>
        RunShard(shard, globalBatch, learningRate, step, collective, sync: null);

    /// <summary><see cref="RunShard(int, int, float, ulong, Distributed.Collective)"/>, BN synchronised over the ranks by <paramref name="sync"/> when not null.</summary>
    internal void RunShard(int shard, int globalBatch, float learningRate, ulong step, Distributed.Collective collective, Distributed.SyncBatchNorm? sync)
    {
        ArgumentNullException.ThrowIfNull(collective);
        sync?.BeginStep(shard, globalBatch);
        Gradients(shard, step, sync);
        collective.AllReduceSum(Network.Backend, Network.Gradients.All, (float)shard / globalBatch);
        Optimizer.Step(learningRate);
    }

    /// <summary>Sets <see cref="Stats"/> to zero.</summary>
    public void ResetStats() => Network.Backend.Fill(Stats, 0f);

    /// <summary>Reads [loss sum, correct] back to the host (synchronises).</summary>
    public (double LossSum, double Correct) ReadStats()
    {
        var s = Network.Backend.ToArray(Stats);
        return (s[0], s[1]);
    }

    /// <summary>Frees the label and statistics buffers.</summary>
    public void Dispose()
    {
        Labels.Buffer.Dispose();
        Stats.Buffer.Dispose();
    }
}
