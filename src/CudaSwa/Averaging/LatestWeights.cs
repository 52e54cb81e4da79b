using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// LAWA, latest weight averaging (Kaddour, "Stop Wasting My Time! Saving Days of ImageNet and BERT
/// Training with Latest Weight Averaging", 2022): the equal-weight mean of the last <see cref="K"/>
/// collected weights, kept as a ring of K snapshots next to the mean, on the averager's device.
/// After each collection the mean is rebuilt from the held snapshots, oldest first, with the fused
/// SWA update (weight 1/(j+1) for the j-th), so while no snapshot has been dropped it is the SWA
/// average bit for bit.
/// </summary>
public sealed class LatestWeights : IDisposable, IAveragingState
{
    private readonly Tensor _mean;
    private readonly AveragePlan[] _plans;

    /// <summary>The most snapshots a ring may hold.</summary>
    public const int MaxK = 1000;

    /// <summary>
    /// Allocates a ring of <paramref name="k"/> snapshots as long as <paramref name="mean"/> (the
    /// averaged buffer, which LAWA rewrites) on <paramref name="backend"/>.
    /// </summary>
    public LatestWeights(Backend backend, Tensor mean, int k)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (k < 1 || k > MaxK) throw new ArgumentOutOfRangeException(nameof(k), $"LAWA keeps 1..{MaxK} snapshots; got {k}.");
        if ((long)k * mean.Length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(k), $"{k} snapshots of {mean.Length:N0} values exceed one buffer's {int.MaxValue:N0} values; use a smaller K.");
        Backend = backend;
        K = k;
        Length = mean.Length;
        _mean = mean;
        Ring = backend.AllocateTensor(new TensorShape(k * (int)Length));
        backend.Fill(Ring, 0f);
        _plans = new AveragePlan[k];
        for (int i = 0; i < k; i++) _plans[i] = backend.PrepareAverage([new AveragePair(mean, Slot(i))]);
    }

    /// <summary>The backend the ring and the mean live on.</summary>
    public Backend Backend { get; }
    /// <summary>Snapshots kept (K).</summary>
    public int K { get; }
    /// <summary>Values per snapshot.</summary>
    public long Length { get; }
    /// <summary>Weights collected so far.</summary>
    public long Count { get; private set; }
    /// <summary>Snapshots held now: min(Count, K).</summary>
    public int Held => (int)Math.Min(Count, K);
    /// <summary>The slot the next collection writes (Count mod K).</summary>
    public int NextSlot => (int)(Count % K);
    /// <summary>The ring: K snapshots of Length values, slot i at i·Length.</summary>
    public Tensor Ring { get; }

    /// <summary>Ring slot <paramref name="slot"/> as a view.</summary>
    public Tensor Slot(int slot)
    {
        if (slot < 0 || slot >= K) throw new ArgumentOutOfRangeException(nameof(slot), $"Slot must be in 0..{K - 1}; got {slot}.");
        return new Tensor(Ring.Buffer, Ring.Offset + slot * Length, new TensorShape((int)Length));
    }

    /// <summary>Copies <paramref name="current"/> into the next slot (over the oldest once K are held) and rebuilds the mean.</summary>
    public void Collect(Tensor current)
    {
        if (current.Length != Length) throw new ArgumentException($"current holds {current.Length} values; the ring's snapshots hold {Length}.", nameof(current));
        Backend.Copy(current, Slot(NextSlot));
        Count++;
        RebuildMean();
    }

    /// <summary>The mean of the held snapshots, oldest first: the running mean, so each step is one fused update.</summary>
    private void RebuildMean()
    {
        int held = Held, first = Count <= K ? 0 : NextSlot;
        for (int j = 0; j < held; j++) Backend.AverageUpdate(_plans[(first + j) % K], j == 0 ? 1f : (float)(1.0 / (j + 1)));
    }

    /// <summary>Reloads the count of a saved ring whose slots were uploaded (see <see cref="Slot"/>) and rebuilds the mean from them.</summary>
    public void Restore(long count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"Count must be >= 0; got {count}.");
        Count = count;
        if (count > 0) RebuildMean();
    }

    void IAveragingState.Collect(Tensor current, Tensor mean) => Collect(current);
    string IAveragingState.FileName => "lawa.safetensors";
    string IAveragingState.Describe() => $"LAWA's last {Held} of {Count} snapshots (their mean is the average)";
    IEnumerable<KeyValuePair<string, string>> IAveragingState.Metadata() =>
        [new("k", RingTensors.Text(K)), new("count", RingTensors.Text(Count)), new("next_slot", RingTensors.Text(NextSlot))];
    IEnumerable<IO.SafeTensors.Entry> IAveragingState.Entries(ArenaLayout layout) => RingTensors.Entries(layout, "snapshots.", K, Slot, Backend);

    void IAveragingState.Restore(IO.SafeTensors.Contents contents, ArenaLayout layout, long count, string path)
    {
        RingTensors.RequireSame(contents, "k", K, "LAWA K", "LawaK", path);
        RingTensors.Restore(contents, layout, "snapshots.", K, Slot, Backend, path);
        Restore(count);
    }

    /// <summary>Frees the ring and the prepared updates.</summary>
    public void Dispose()
    {
        foreach (var plan in _plans) plan.Dispose();
        Ring.Buffer.Dispose();
    }
}

/// <summary>LAWA as an averaging method: its state is the ring (<see cref="LatestWeights"/>), which rebuilds the mean.</summary>
internal sealed class LawaMethod(AveragingOptions options) : AveragingMethod(options)
{
    public override string Name => "LAWA";
    public override IAveragingState CreateState(Backend backend, Tensor mean) => new LatestWeights(backend, mean, Options.LawaK);
    public override string Describe() => $"LAWA (the last {Options.LawaK} averaged models)";
    public override string DescribeAverage(long count, IAveragingState? state) =>
        state is LatestWeights { } ring && ring.Held < ring.Count ? $"average of the last {ring.Held} of {ring.Count} models" : base.DescribeAverage(count, state);
}
