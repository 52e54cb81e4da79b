using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// Running average over any list of (average, current) buffer pairs, for apps that embed the
/// engine and keep their parameters in separate buffers. Every update is ONE fused pass over all
/// pairs (one kernel launch on a GPU: the multi-tensor form of the update), prepared once here
/// (<see cref="Backend.PrepareAverage"/>). The count n is kept on the host, so an update never
/// reads anything back from the device. Dispose it before freeing the buffers.
/// </summary>
public sealed class MultiBufferAverager : IDisposable
{
    private readonly AveragePair[] _pairs;
    private readonly AveragePlan _plan;
    private readonly AveragingMethod _method;

    /// <summary>
    /// Validates the <paramref name="pairs"/> (each average as long as its current, all on
    /// <paramref name="backend"/>) and prepares the fused update. The averager does not own the buffers.
    /// </summary>
    public MultiBufferAverager(Backend backend, IReadOnlyList<AveragePair> pairs, AveragingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(pairs);
        Options = options ?? new AveragingOptions();
        Options.Validate();
        _method = Options.CreateMethod();
        Backend = backend;
        _pairs = [.. pairs];
        for (int i = 0; i < _pairs.Length; i++)
            if (_pairs[i].Average.Length != _pairs[i].Current.Length)
                throw new ArgumentException($"Pair {i}: average has {_pairs[i].Average.Length} values, current has {_pairs[i].Current.Length}.", nameof(pairs));
        _plan = backend.PrepareAverage(_pairs);
    }

    /// <summary>The backend the pairs live on.</summary>
    public Backend Backend { get; }
    /// <summary>Kind of average and EMA decay (placement does not apply here).</summary>
    public AveragingOptions Options { get; }
    /// <summary>The (average, current) pairs, in the order given.</summary>
    public IReadOnlyList<AveragePair> Pairs => _pairs;

    /// <summary>Models averaged so far.</summary>
    public long Count { get; private set; }

    /// <summary>
    /// Folds every current buffer into its average in one fused pass, average += w * (current - average),
    /// with w from <see cref="AveragingOptions.UpdateWeight"/> (the first update copies).
    /// </summary>
    public void Update()
    {
        Backend.AverageUpdate(_plan, _method.UpdateWeight(Count));
        Count++;
    }

    /// <summary>Restores the count (when resuming from a checkpoint whose averages were reloaded).</summary>
    public void Restore(long count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"Count must be >= 0; got {count}.");
        Count = count;
    }

    /// <summary>Releases the prepared update; the buffers are not freed.</summary>
    public void Dispose() => _plan.Dispose();
}
