using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// The second moment and low-rank deviation matrix of SWA-Gaussian (SWAG; Maddox et al., "A Simple
/// Baseline for Bayesian Uncertainty in Deep Learning", NeurIPS 2019) over one flat buffer of
/// weights, kept next to the SWA mean: the mean of squares, and a ring of the last
/// <see cref="Rank"/> deviation columns (w − mean at each collection). A collection updates the
/// mean, the mean of squares and the next column in ONE fused pass (<see cref="Backend.SwagCollect"/>);
/// a sample is one fused pass too (<see cref="Backend.SwagSample"/>). The mean itself belongs to
/// the caller (the SWA average).
/// </summary>
public sealed class SwagMoments : IDisposable, IAveragingState
{
    private readonly Tensor _columnNormals;
    private readonly float[] _normals;

    /// <summary>Default rank K: the last 20 deviation columns, as in the paper.</summary>
    public const int DefaultRank = 20;
    /// <summary>Default scale of the sampled covariance: 0.5, which gives the paper's 1/√2 factors.</summary>
    public const double DefaultScale = 0.5;
    /// <summary>The smallest variance a sample uses (sq_mean − mean² can round below zero), as in the reference code.</summary>
    public const float DefaultVarianceFloor = 1e-30f;

    /// <summary>
    /// Allocates the mean of squares (<paramref name="length"/> values) and <paramref name="rank"/>
    /// deviation columns of that length on <paramref name="backend"/>; rank 0 keeps the diagonal only.
    /// </summary>
    public SwagMoments(Backend backend, long length, int rank = DefaultRank)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (length <= 0 || length > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(length), $"A SWAG buffer holds 1..{int.MaxValue} values; got {length}.");
        if (rank < 0 || rank > 1024) throw new ArgumentOutOfRangeException(nameof(rank), $"The SWAG rank (deviation columns kept) must be in 0..1024; got {rank}.");
        if ((long)rank * length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(rank), $"{rank} deviation columns of {length:N0} values exceed one buffer's {int.MaxValue:N0} values; use a smaller rank.");
        Backend = backend;
        Length = length;
        Rank = rank;
        SquareMean = backend.AllocateTensor(new TensorShape((int)length));
        backend.Fill(SquareMean, 0f);
        if (rank > 0)
        {
            Deviations = backend.AllocateTensor(new TensorShape(rank * (int)length));
            backend.Fill(Deviations, 0f);
            _columnNormals = backend.AllocateTensor(new TensorShape(rank));
        }
        _normals = new float[rank];
    }

    /// <summary>The backend every buffer lives on.</summary>
    public Backend Backend { get; }
    /// <summary>Values per column (the length of the averaged buffer).</summary>
    public long Length { get; }
    /// <summary>Deviation columns kept (K); 0 for diagonal-only SWAG.</summary>
    public int Rank { get; }
    /// <summary>Models collected so far.</summary>
    public long Count { get; private set; }
    /// <summary>Deviation columns held now: min(Count, Rank).</summary>
    public int Columns => (int)Math.Min(Count, Rank);
    /// <summary>The ring slot the next collection writes (Count mod Rank; 0 when Rank is 0).</summary>
    public int NextSlot => Rank == 0 ? 0 : (int)(Count % Rank);

    /// <summary>The running mean of squares of the collected weights.</summary>
    public Tensor SquareMean { get; }
    /// <summary>The deviation ring: Rank columns of Length values, slot k at k·Length (a null tensor when Rank is 0).</summary>
    public Tensor Deviations { get; }

    /// <summary>Ring slot <paramref name="slot"/> as a view.</summary>
    public Tensor Slot(int slot)
    {
        if (slot < 0 || slot >= Rank) throw new ArgumentOutOfRangeException(nameof(slot), $"Slot must be in 0..{Rank - 1}; got {slot}.");
        return new Tensor(Deviations.Buffer, Deviations.Offset + slot * Length, new TensorShape((int)Length));
    }

    /// <summary>
    /// Folds <paramref name="current"/> into <paramref name="mean"/> (the equal-weight running mean,
    /// weight 1/(Count+1)) and the mean of squares, and writes current − mean into the next ring slot:
    /// one fused pass.
    /// </summary>
    public void Collect(Tensor current, Tensor mean)
    {
        RequireLength(current, nameof(current));
        RequireLength(mean, nameof(mean));
        float alpha = Count == 0 ? 1f : (float)(1.0 / (Count + 1));
        Backend.SwagCollect(current, mean, SquareMean, Rank == 0 ? default : Slot(NextSlot), alpha);
        Count++;
    }

    /// <summary>
    /// Writes sample number <paramref name="sample"/> of the Gaussian around <paramref name="mean"/>
    /// into <paramref name="output"/>: w = mean + √scale·(√diag·z₁ + D·z₂/√(C−1)), with diag the
    /// clamped variance, D the C held deviation columns (the low-rank term needs C ≥ 2) and z drawn
    /// from Philox keyed by (<paramref name="seed"/>, <paramref name="sample"/>), so a sample is
    /// reproducible and the same on every backend. scale 0.5 is the paper's equation (factors 1/√2
    /// and 1/√(2(K−1))); the covariance of the samples is scale·(diag + DDᵀ/(C−1)).
    /// </summary>
    public void Sample(Tensor mean, Tensor output, int sample, ulong seed, double scale = DefaultScale, float varianceFloor = DefaultVarianceFloor)
    {
        if (Count == 0) throw new InvalidOperationException("Nothing has been collected yet: SWAG has no moments to sample from.");
        if (!(scale >= 0) || double.IsInfinity(scale)) throw new ArgumentOutOfRangeException(nameof(scale), $"The SWAG scale must be finite and >= 0; got {scale}.");
        if (sample < 0) throw new ArgumentOutOfRangeException(nameof(sample), $"The sample index must be >= 0; got {sample}.");
        RequireLength(mean, nameof(mean));
        RequireLength(output, nameof(output));
        int columns = Columns;
        float lowRank = columns >= 2 ? (float)Math.Sqrt(scale / (columns - 1)) : 0f;
        int used = lowRank == 0f ? 0 : columns;
        if (used > 0)
        {
            SwagSampleSpec.ColumnNormals(_normals.AsSpan(0, used), seed, (uint)sample);
            Backend.Upload<float>(_normals.AsSpan(0, used), new Tensor(_columnNormals.Buffer, _columnNormals.Offset, new TensorShape(used)));
        }
        var spec = new SwagSampleSpec(used, (float)Math.Sqrt(scale), lowRank, varianceFloor, seed, (uint)sample);
        Backend.SwagSample(mean, SquareMean, used > 0 ? Deviations : default, used > 0 ? _columnNormals : default, spec, output);
    }

    /// <summary>The held deviation columns on the host, oldest first.</summary>
    public float[][] DeviationsInOrder()
    {
        var all = Rank == 0 ? [] : Backend.ToArray(Deviations);
        int columns = Columns, first = Count <= Rank ? 0 : NextSlot;
        var result = new float[columns][];
        for (int j = 0; j < columns; j++)
            result[j] = all.AsSpan((int)(((first + j) % Rank) * Length), (int)Length).ToArray();
        return result;
    }

    /// <summary>The mean of squares on the host (for checkpoints).</summary>
    public float[] SquareMeanToHost() => Backend.ToArray(SquareMean);

    /// <summary>The whole ring on the host, slot by slot (for checkpoints); empty when Rank is 0.</summary>
    public float[] DeviationsToHost() => Rank == 0 ? [] : Backend.ToArray(Deviations);

    /// <summary>Reloads a saved mean of squares, ring (slot by slot, as <see cref="DeviationsToHost"/> gives it) and count.</summary>
    public void Restore(ReadOnlySpan<float> squareMean, ReadOnlySpan<float> deviations, long count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"Count must be >= 0; got {count}.");
        if (squareMean.Length != Length) throw new ArgumentException($"The saved mean of squares has {squareMean.Length} values; this model needs {Length}.", nameof(squareMean));
        if (deviations.Length != Rank * Length)
            throw new ArgumentException($"The saved deviation ring has {deviations.Length} values; rank {Rank} of {Length} values needs {Rank * Length}.", nameof(deviations));
        Backend.Upload(squareMean, SquareMean);
        if (Rank > 0) Backend.Upload(deviations, Deviations);
        Count = count;
    }

    /// <summary>
    /// Reloads the mean of squares and the count only; the caller has written the ring's slots
    /// through <see cref="Slot"/> (a checkpoint does, part by part, so a ring of several GB is never
    /// on the host whole).
    /// </summary>
    internal void RestoreMoments(ReadOnlySpan<float> squareMean, long count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"Count must be >= 0; got {count}.");
        if (squareMean.Length != Length) throw new ArgumentException($"The saved mean of squares has {squareMean.Length} values; this model needs {Length}.", nameof(squareMean));
        Backend.Upload(squareMean, SquareMean);
        Count = count;
    }

    private void RequireLength(Tensor t, string name)
    {
        if (t.IsNull || t.Length != Length) throw new ArgumentException($"{name} must hold {Length} values (the length of the SWAG moments); got {(t.IsNull ? 0 : t.Length)}.", name);
    }

    /// <summary>The checkpoint file of the moments (also published at the top of a run folder).</summary>
    internal const string CheckpointFile = "swag.safetensors";
    string IAveragingState.FileName => CheckpointFile;
    string IAveragingState.Describe() => $"SWAG moments of {Count} models (the mean is the average's)";
    IEnumerable<KeyValuePair<string, string>> IAveragingState.Metadata() =>
        [new("count", RingTensors.Text(Count)), new("rank", RingTensors.Text(Rank)), new("next_slot", RingTensors.Text(NextSlot))];

    IEnumerable<IO.SafeTensors.Entry> IAveragingState.Entries(ArenaLayout layout)
    {
        var square = SquareMeanToHost();
        foreach (var e in layout.Entries)
            yield return new IO.SafeTensors.Entry("square_mean." + e.Name, e.Shape.ToArray(), square.AsSpan((int)e.Offset, (int)e.Length).ToArray());
        if (Rank == 0) yield break;
        foreach (var entry in RingTensors.Entries(layout, "deviations.", Rank, Slot, Backend)) yield return entry;
    }

    void IAveragingState.Restore(IO.SafeTensors.Contents contents, ArenaLayout layout, long count, string path)
    {
        RingTensors.RequireSame(contents, "rank", Rank, "SWAG rank", "SwagRank", path);
        var square = new float[Length];
        foreach (var e in layout.Entries)
        {
            if (!contents.Tensors.TryGetValue("square_mean." + e.Name, out var sq) || sq.Data.Length != e.Length)
                throw new Data.DataFormatException($"'{path}' lacks square_mean.{e.Name} with shape {e.Shape}.");
            sq.Data.CopyTo(square.AsSpan((int)e.Offset));
        }
        if (Rank > 0) RingTensors.Restore(contents, layout, "deviations.", Rank, Slot, Backend, path);
        RestoreMoments(square, count);
    }

    /// <summary>Frees the mean of squares and the ring.</summary>
    public void Dispose()
    {
        SquareMean.Buffer.Dispose();
        Deviations.Buffer?.Dispose();
        _columnNormals.Buffer?.Dispose();
    }
}

/// <summary>SWAG as an averaging method: its state is the moments (<see cref="SwagMoments"/>), whose fused pass also updates the mean.</summary>
internal sealed class SwagMethod(AveragingOptions options) : AveragingMethod(options)
{
    public override string Name => "SWAG";
    /// <summary>SWAG's mean is the SWA average; its own row is the Bayesian model average of samples.</summary>
    public override string AverageName => "SWA";
    public override IAveragingState CreateState(Backend backend, Tensor mean) => new SwagMoments(backend, mean.Length, Options.SwagRank);
    public override string Describe() => $"SWAG (rank {Options.SwagRank})";
}
