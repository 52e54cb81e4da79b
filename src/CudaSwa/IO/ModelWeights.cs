using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.IO;

/// <summary>
/// Saves and loads a network's parameters and BN running statistics as safetensors, with
/// PyTorch state_dict names ("layer1.0.conv1.weight", "bn1.running_mean", ...), so a file
/// written here loads into the same model in PyTorch with load_state_dict(strict=False)
/// (num_batches_tracked is not stored).
/// </summary>
public static class ModelWeights
{
    /// <summary>The named tensors of a parameter arena and a BN-buffer arena, copied to the host.</summary>
    public static IEnumerable<SafeTensors.Entry> Entries(Arena parameters, Arena buffers) =>
        Entries(parameters.Layout, parameters.ToHost()).Concat(Entries(buffers.Layout, buffers.ToHost()));

    /// <summary>One named tensor per layout entry, cut from host values laid out as the arena is (names optionally prefixed).</summary>
    public static IEnumerable<SafeTensors.Entry> Entries(ArenaLayout layout, float[] values, string prefix = "") =>
        layout.Entries.Select(e => new SafeTensors.Entry(prefix + e.Name, e.Shape.ToArray(), values.AsSpan((int)e.Offset, (int)e.Length).ToArray()));

    /// <summary>Writes parameters and BN statistics to a safetensors file at <paramref name="path"/> (atomically), with optional string <paramref name="metadata"/>.</summary>
    public static void Save(string path, Arena parameters, Arena buffers, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafeTensors.Write(path, Entries(parameters, buffers), metadata);

    /// <summary>Writes the arenas currently bound to <paramref name="network"/> (its own, or e.g. the SWA average) to <paramref name="path"/>.</summary>
    public static void Save(string path, Network network, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, network.Parameters, network.Buffers, metadata);

    /// <summary>
    /// Loads every parameter (and, when present, BN statistics) by name into the given arenas.
    /// Missing parameters, unknown names and shape mismatches are errors that name the tensor.
    /// </summary>
    public static void Load(SafeTensors.Contents contents, Arena parameters, Arena? buffers, string source, bool requireBuffers = false)
    {
        var p = new float[parameters.All.Length];
        var missing = new List<string>();
        Fill(contents, parameters.Layout, p, missing, source);
        if (missing.Count > 0)
            throw new InvalidDataException($"'{source}' lacks {missing.Count} parameter(s) the model needs, e.g. {string.Join(", ", missing.Take(5))}.");
        var known = new HashSet<string>(parameters.Layout.Entries.Select(e => e.Name));
        if (buffers is not null)
        {
            var b = buffers.ToHost();
            var missingBuffers = new List<string>();
            Fill(contents, buffers.Layout, b, missingBuffers, source);
            if (requireBuffers && missingBuffers.Count > 0)
                throw new InvalidDataException($"'{source}' lacks BN statistics, e.g. {string.Join(", ", missingBuffers.Take(5))}.");
            buffers.FromHost(b);
            foreach (var e in buffers.Layout.Entries) known.Add(e.Name);
        }
        var unknown = contents.Tensors.Keys.Where(k => !known.Contains(k) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        if (unknown.Count > 0)
            throw new InvalidDataException($"'{source}' has {unknown.Count} tensor(s) this model does not have, e.g. {string.Join(", ", unknown.Take(5))} — is it a checkpoint of another model?");
        parameters.FromHost(p);
    }

    /// <summary>
    /// Loads a safetensors file into the arenas currently bound to <paramref name="network"/>; with
    /// <paramref name="requireBuffers"/>, BN statistics missing from the file are an error too.
    /// </summary>
    public static void Load(string path, Network network, bool requireBuffers = false) =>
        Load(SafeTensors.Read(path), network.Parameters, network.Buffers, path, requireBuffers);

    private static void Fill(SafeTensors.Contents contents, ArenaLayout layout, float[] host, List<string> missing, string source)
    {
        foreach (var e in layout.Entries)
        {
            if (!contents.Tensors.TryGetValue(e.Name, out var t))
            {
                missing.Add(e.Name);
                continue;
            }
            if (t.Data.LongLength != e.Length || !t.Shape.SequenceEqual(e.Shape.ToArray()))
                throw new InvalidDataException($"'{source}': tensor '{e.Name}' has shape ({string.Join(", ", t.Shape)}); the model expects {e.Shape}.");
            t.Data.CopyTo(host.AsSpan((int)e.Offset));
        }
    }
}
