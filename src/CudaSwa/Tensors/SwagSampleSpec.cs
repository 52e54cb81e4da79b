namespace CudaSwa.Tensors;

/// <summary>
/// What one SWAG weight sample draws (see <see cref="Backend.SwagSample"/>):
/// w = mean + DiagonalScale·sqrt(max(sq_mean − mean², VarianceFloor))·z₁ + LowRankScale·Σₖ Dₖ·zₖ.
/// </summary>
/// <param name="Columns">Deviation columns used (0: diagonal only).</param>
/// <param name="DiagonalScale">Factor of the diagonal term (√scale in the SWAG paper's notation with scale 0.5: 1/√2).</param>
/// <param name="LowRankScale">Factor of the low-rank term (√(scale/(K−1)); 0 when fewer than two columns are held).</param>
/// <param name="VarianceFloor">Smallest variance used: sq_mean − mean² is clamped up to it (round-off can make it negative).</param>
/// <param name="Seed">Seed of the Philox stream of the diagonal draws.</param>
/// <param name="Sample">Index of the sample: with the seed, keys every draw, so a sample is reproducible.</param>
public readonly record struct SwagSampleSpec(int Columns, float DiagonalScale, float LowRankScale, float VarianceFloor, ulong Seed, uint Sample)
{
    /// <summary>Stream tag of the per-column draws of the low-rank term (drawn on the host for every backend).</summary>
    internal const uint LowRankTag = 0x5357414Cu;

    /// <summary>The normals that weight the deviation columns of one sample, drawn on the host so that they are the same on every backend.</summary>
    internal static void ColumnNormals(Span<float> destination, ulong seed, uint sample)
    {
        for (int k = 0; k < destination.Length; k++)
            destination[k] = Util.Philox.Normal(Util.Philox.Generate((uint)k, 0, sample, LowRankTag, (uint)seed, (uint)(seed >> 32)));
    }
}
