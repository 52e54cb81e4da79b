using System.Globalization;
using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// What an averaging method keeps beyond the average itself (SWAG's moments, LAWA's ring), made by
/// <see cref="AveragingMethod.CreateState"/>, updated instead of the fused pair, saved by every
/// checkpoint as a file of its own and restored on resume. The checkpoint iterates
/// <see cref="WeightAverager.State"/>: a method with state of its own adds no checkpoint code.
/// </summary>
internal interface IAveragingState
{
    /// <summary>The checkpoint file (e.g. swag.safetensors).</summary>
    string FileName { get; }
    /// <summary>Models collected so far (nothing is saved before the first).</summary>
    long Count { get; }
    /// <summary>Folds <paramref name="current"/> into the state and rewrites <paramref name="mean"/>, the average, from it.</summary>
    void Collect(Tensor current, Tensor mean);
    /// <summary>One line for the file's "content" metadata.</summary>
    string Describe();
    /// <summary>The method's own metadata (its size, count and ring position), checked on restore.</summary>
    IEnumerable<KeyValuePair<string, string>> Metadata();
    /// <summary>The state as named tensors, laid out by the parameter arena's <paramref name="layout"/>.</summary>
    IEnumerable<SafeTensors.Entry> Entries(ArenaLayout layout);
    /// <summary>Reloads what <see cref="Entries"/> wrote, with <paramref name="count"/> models collected; <paramref name="path"/> names the file in errors.</summary>
    void Restore(SafeTensors.Contents contents, ArenaLayout layout, long count, string path);
}

/// <summary>
/// A ring of device buffers laid out as the parameter arena (SWAG's deviations, LAWA's snapshots)
/// as one tensor per parameter, [slots, shape...], moved one slot of one parameter at a time: a
/// ring can pass 2 GiB (a WideResNet-28-10 at SWAG rank 20 holds 2.9 GB) and is never on the host twice.
/// </summary>
internal static class RingTensors
{
    public static IEnumerable<SafeTensors.Entry> Entries(ArenaLayout layout, string prefix, int slots, Func<int, Tensor> slot, Backend backend)
    {
        foreach (var e in layout.Entries)
        {
            var rows = new float[slots * e.Length];
            for (int k = 0; k < slots; k++)
                backend.Download<float>(slot(k).Slice(e.Offset, (int)e.Length), rows.AsSpan((int)(k * e.Length), (int)e.Length));
            yield return new SafeTensors.Entry(prefix + e.Name, [slots, .. e.Shape.ToArray()], rows);
        }
    }

    public static void Restore(SafeTensors.Contents contents, ArenaLayout layout, string prefix, int slots, Func<int, Tensor> slot, Backend backend, string path)
    {
        foreach (var e in layout.Entries)
        {
            if (!contents.Tensors.TryGetValue(prefix + e.Name, out var rows) || rows.Data.Length != slots * e.Length)
                throw new DataFormatException($"'{path}' lacks {prefix}{e.Name} with shape [{slots}, {string.Join(", ", e.Shape.ToArray())}].");
            for (int k = 0; k < slots; k++)
                backend.Upload<float>(rows.Data.AsSpan((int)(k * e.Length), (int)e.Length), slot(k).Slice(e.Offset, (int)e.Length));
        }
    }

    /// <summary>Refuses a saved state whose <paramref name="key"/> (its size) differs from this run's.</summary>
    public static void RequireSame(SafeTensors.Contents contents, string key, int value, string what, string property, string path)
    {
        string expected = value.ToString(CultureInfo.InvariantCulture);
        if (!contents.Metadata.TryGetValue(key, out var saved) || saved != expected)
            throw new DataFormatException($"'{path}' keeps {what} {saved ?? "(none recorded)"}; this run uses {what} {expected} ({property} must match the saved run).");
    }

    public static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
