namespace CudaSwa.Tensors;

/// <summary>
/// A prepared running-average update over a fixed list of (average, current) buffer pairs: the
/// pairs validated once, plus whatever the backend precomputes for them (on a GPU, the device
/// tables of the multi-tensor kernel: pointers, lengths and chunk map). Made by
/// <see cref="Backend.PrepareAverage"/> and owned by the averager that runs it, so an update is
/// one pass (one launch) with no per-update lookup or allocation.
/// </summary>
public abstract class AveragePlan : IDisposable
{
    /// <summary>Records the <paramref name="pairs"/> (already validated by <see cref="Backend.PrepareAverage"/>) of <paramref name="backend"/>.</summary>
    protected AveragePlan(Backend backend, AveragePair[] pairs)
    {
        Backend = backend;
        PairArray = pairs;
        TotalLength = pairs.Sum(p => p.Average.Length);
    }

    /// <summary>The backend that prepared the plan; only it can run the plan.</summary>
    public Backend Backend { get; }

    /// <summary>The pairs, in the order given.</summary>
    public IReadOnlyList<AveragePair> Pairs => PairArray;

    /// <summary>The pairs as an array, for the backend's update.</summary>
    protected AveragePair[] PairArray { get; }

    /// <summary>Elements updated per call, over all pairs.</summary>
    public long TotalLength { get; }

    /// <summary>Whether <see cref="Dispose"/> has run; a disposed plan can no longer be run.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Releases what the backend prepared (later calls do nothing); the pairs' buffers are not freed.</summary>
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Free();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the backend prepared (device tables).</summary>
    protected virtual void Free() { }
}
