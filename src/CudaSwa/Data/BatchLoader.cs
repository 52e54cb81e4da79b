using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Data;

/// <summary>
/// Turns a <see cref="DeviceDataset"/> into batches written straight into a network's input.
/// The sample order of an epoch is a Philox permutation keyed by (seed, epoch), uploaded once per
/// epoch; crops and flips are keyed by (seed, epoch, sample index). Everything is a pure function
/// of (seed, epoch, batch index), which is what makes resume bit-exact and lets the CPU and GPU
/// backends see identical batches. The last batch may be smaller (no samples are dropped).
/// </summary>
public sealed class BatchLoader : IDisposable
{
    private readonly Tensor _order;
    private int _epoch = -1;

    /// <summary>
    /// Batches of <paramref name="batchSize"/> samples of <paramref name="data"/>, in a new seeded order each
    /// epoch when <paramref name="shuffle"/>, augmented per <paramref name="augment"/> with its seed replaced by
    /// <paramref name="seed"/>. Allocates the sample-order table on the data's backend.
    /// </summary>
    public BatchLoader(DeviceDataset data, int batchSize, bool shuffle, AugmentSpec augment, ulong seed)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"Batch size must be >= 1; got {batchSize}.");
        Data = data;
        BatchSize = batchSize;
        Shuffle = shuffle;
        Augment = augment with { Seed = seed };
        Seed = seed;
        _order = data.Backend.AllocateTensor(new TensorShape(Math.Max(1, data.Count)), DType.Int32);
    }

    /// <summary>The dataset the batches come from.</summary>
    public DeviceDataset Data { get; }
    /// <summary>Samples per batch (the last batch may have fewer).</summary>
    public int BatchSize { get; }
    /// <summary>Whether each epoch visits the samples in a seeded random order; otherwise in dataset order.</summary>
    public bool Shuffle { get; }
    /// <summary>The augmentation applied, keyed by <see cref="Seed"/>.</summary>
    public AugmentSpec Augment { get; }
    /// <summary>Keys the sample order and the augmentation.</summary>
    public ulong Seed { get; }
    /// <summary>The epoch fixed by the last <see cref="BeginEpoch"/>; -1 before the first.</summary>
    public int Epoch => _epoch;

    /// <summary>Batches per epoch: the sample count divided by the batch size, rounded up.</summary>
    public int BatchCount => (Data.Count + BatchSize - 1) / BatchSize;

    /// <summary>Samples in batch <paramref name="batch"/>: the batch size, or fewer for the last batch.</summary>
    public int SizeOf(int batch) => Math.Min(BatchSize, Data.Count - batch * BatchSize);

    /// <summary>Fixes the sample order for an epoch (uploads it once).</summary>
    public void BeginEpoch(int epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), $"Epoch must be >= 0; got {epoch}.");
        if (epoch == _epoch) return;
        int[] order = Shuffle ? Philox.Permutation(Data.Count, Seed, (ulong)epoch) : Enumerable.Range(0, Data.Count).ToArray();
        Data.Backend.Upload<int>(order, _order.Slice(0, Data.Count).Reshape(new TensorShape(Data.Count)));
        _epoch = epoch;
    }

    /// <summary>Writes batch <paramref name="batch"/> of the current epoch into x and labels (their first SizeOf(batch) samples); returns its size.</summary>
    public int Load(int batch, Tensor x, Tensor labels)
    {
        if (_epoch < 0) throw new InvalidOperationException("Call BeginEpoch before Load.");
        if (batch < 0 || batch >= BatchCount)
            throw new ArgumentOutOfRangeException(nameof(batch), $"Batch {batch} is outside 0..{BatchCount - 1}.");
        int b = SizeOf(batch);
        var indices = new Tensor(_order.Buffer, _order.Offset + (long)batch * BatchSize, new TensorShape(b));
        Data.Backend.AugmentBatch(Data.Images, Data.Labels, indices, Augment, _epoch, x.WithBatch(b), labels.WithBatch(b));
        return b;
    }

    /// <summary>
    /// Rank <paramref name="rank"/>'s share of batch <paramref name="batch"/> when <paramref name="ranks"/>
    /// ranks split it: the contiguous samples [b·rank/ranks, b·(rank+1)/ranks) of the batch's b
    /// (the same samples and crops as <see cref="Load"/> gives them); writes them into the first
    /// positions of x and labels and returns their number.
    /// </summary>
    public int LoadShard(int batch, int rank, int ranks, Tensor x, Tensor labels)
    {
        if (_epoch < 0) throw new InvalidOperationException("Call BeginEpoch before LoadShard.");
        if (batch < 0 || batch >= BatchCount)
            throw new ArgumentOutOfRangeException(nameof(batch), $"Batch {batch} is outside 0..{BatchCount - 1}.");
        if (ranks < 1 || rank < 0 || rank >= ranks) throw new ArgumentOutOfRangeException(nameof(rank), $"Rank {rank} of {ranks} does not exist.");
        var (start, count) = Shard(SizeOf(batch), rank, ranks);
        if (count == 0) return 0;
        var indices = new Tensor(_order.Buffer, _order.Offset + (long)batch * BatchSize + start, new TensorShape(count));
        Data.Backend.AugmentBatch(Data.Images, Data.Labels, indices, Augment, _epoch, x.WithBatch(count), labels.WithBatch(count));
        return count;
    }

    /// <summary>The first sample and the number of samples of rank <paramref name="rank"/>'s share of <paramref name="batch"/> samples.</summary>
    public static (int Start, int Count) Shard(int batch, int rank, int ranks)
    {
        int start = (int)((long)batch * rank / ranks), end = (int)((long)batch * (rank + 1) / ranks);
        return (start, end - start);
    }

    /// <summary>Frees the order table.</summary>
    public void Dispose() => _order.Buffer.Dispose();
}
