using CudaSwa.Tensors;
using CudaSwa.Util;

namespace CudaSwa.Landscape;

/// <summary>
/// Random directions in weight space for the loss-landscape rays: standard normal draws from
/// Philox keyed by (seed, ray), so the same seed gives the same directions on every machine and
/// backend; normalised to unit L2 norm over all parameters, or per filter (Li et al. 2018).
/// Alignment padding between the arena's tensors is zero.
/// </summary>
public static class LandscapeDirections
{
    private const ulong StreamTag = 0x4C414E44_00000000UL; // "LAND"

    /// <summary>Direction <paramref name="ray"/> over <paramref name="layout"/>: unit L2 norm over all parameters.</summary>
    public static float[] Unit(ArenaLayout layout, ulong seed, int ray)
    {
        var d = Draw(layout, seed, ray);
        double norm = 0;
        foreach (float v in d) norm += (double)v * v;
        float scale = (float)(1.0 / Math.Sqrt(norm));
        for (int i = 0; i < d.Length; i++) d[i] *= scale;
        return d;
    }

    /// <summary>
    /// Direction <paramref name="ray"/>, filter-normalised against <paramref name="weights"/> (laid
    /// out as the arena): in every tensor of rank ≥ 2, each filter (the values of one output
    /// channel or row, index 0 of the shape) gets the L2 norm of the same filter of the weights;
    /// tensors of rank 1 (biases, BN scale and shift) get zeros.
    /// </summary>
    public static float[] FilterNormalized(ArenaLayout layout, ReadOnlySpan<float> weights, ulong seed, int ray)
    {
        if (weights.Length != layout.Length) throw new ArgumentException($"The weights hold {weights.Length} values; the layout {layout.Length}.", nameof(weights));
        var d = Draw(layout, seed, ray);
        foreach (var e in layout.Entries)
        {
            var shape = e.Shape.ToArray();
            if (shape.Length < 2)
            {
                d.AsSpan((int)e.Offset, (int)e.Length).Clear();
                continue;
            }
            long per = e.Length / shape[0];
            for (int f = 0; f < shape[0]; f++)
            {
                int start = (int)(e.Offset + f * per);
                double dn = 0, wn = 0;
                for (int i = start; i < start + per; i++) { dn += (double)d[i] * d[i]; wn += (double)weights[i] * weights[i]; }
                float scale = dn > 0 ? (float)(Math.Sqrt(wn) / Math.Sqrt(dn)) : 0f;
                for (int i = start; i < start + per; i++) d[i] *= scale;
            }
        }
        return d;
    }

    private static float[] Draw(ArenaLayout layout, ulong seed, int ray)
    {
        if (ray < 0) throw new ArgumentOutOfRangeException(nameof(ray), $"The ray index must be >= 0; got {ray}.");
        var d = new float[layout.Length];
        Philox.FillNormal(d, 1.0, seed, StreamTag | (uint)ray);
        // Padding between tensors carries no weight: no component there.
        long end = 0;
        foreach (var e in layout.Entries.OrderBy(e => e.Offset))
        {
            d.AsSpan((int)end, (int)(e.Offset - end)).Clear();
            end = e.Offset + e.Length;
        }
        d.AsSpan((int)end).Clear();
        return d;
    }
}
