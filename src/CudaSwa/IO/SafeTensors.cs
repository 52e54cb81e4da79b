using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CudaSwa.Util;

namespace CudaSwa.IO;

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to {dtype, shape, data_offsets [begin, end)} relative to the data
/// section (plus an optional "__metadata__" map of strings), then the raw little-endian data.
/// Only F32 tensors are written; F32 is what is read. Files are written to a temporary name
/// and renamed, so a crash never leaves a half-written file under the real name.
/// </summary>
public static class SafeTensors
{
    /// <summary>One named float32 tensor.</summary>
    /// <param name="Name">The tensor's name, unique in a file.</param>
    /// <param name="Shape">Its dimensions, outermost first.</param>
    /// <param name="Data">Its values, row-major: as many as the shape holds.</param>
    public sealed record Entry(string Name, int[] Shape, float[] Data);

    /// <summary>
    /// Writes <paramref name="tensors"/> as F32, in the order given, with optional string
    /// <paramref name="metadata"/>, to a temporary file then renamed to <paramref name="path"/>. Throws
    /// <see cref="ArgumentException"/> for a repeated name, the reserved name "__metadata__", or data that does
    /// not match its shape.
    /// </summary>
    public static void Write(string path, IEnumerable<Entry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var duplicate = list.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"Tensor name '{duplicate.Key}' appears more than once; safetensors names are unique.", nameof(tensors));
        if (list.Any(t => t.Name == "__metadata__")) throw new ArgumentException("'__metadata__' is reserved for the metadata map.", nameof(tensors));
        foreach (var t in list)
        {
            long expected = t.Shape.Aggregate(1L, (a, b) => a * b);
            if (expected != t.Data.Length)
                throw new ArgumentException($"Tensor '{t.Name}': shape ({string.Join(", ", t.Shape)}) holds {expected} values, data has {t.Data.Length}.");
        }
        var header = new JsonObject();
        var meta = new JsonObject();
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
            if (k != ContentHashKey) meta[k] = v;
        // The tensors' names, shapes and values carry their hash: a reader finds any change to them.
        meta[ContentHashKey] = ContentHash(list);
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var t in list)
        {
            long bytes = (long)t.Data.Length * sizeof(float);
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Pad the header with spaces to a multiple of 8 bytes, as the reference writer does (keeps data aligned).
        int padded = (json.Length + 7) / 8 * 8;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var t in list)
                for (int at = 0; at < t.Data.Length; at += ChunkFloats) // one byte span of a whole large tensor would pass 2 GiB
                    stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan(at, Math.Min(ChunkFloats, t.Data.Length - at))));
        });
    }

    /// <summary>
    /// The metadata key of the content hash every file written here carries: xxHash128 over each
    /// tensor in file order — its name, a zero byte, its shape (int64s) and its values' bytes.
    /// <see cref="Read"/> checks it where present (files from PyTorch have none).
    /// </summary>
    public const string ContentHashKey = "content_xxh128";

    /// <summary>The content hash of <paramref name="tensors"/> in this order (see <see cref="ContentHashKey"/>).</summary>
    public static string ContentHash(IEnumerable<Entry> tensors)
    {
        var hash = new System.IO.Hashing.XxHash128();
        Span<byte> dim = stackalloc byte[8];
        foreach (var t in tensors)
        {
            hash.Append(Encoding.UTF8.GetBytes(t.Name));
            hash.Append([0]);
            foreach (int d in t.Shape)
            {
                BinaryPrimitives.WriteInt64LittleEndian(dim, d);
                hash.Append(dim);
            }
            for (int at = 0; at < t.Data.Length; at += ChunkFloats)
                hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan(at, Math.Min(ChunkFloats, t.Data.Length - at))));
        }
        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    /// <summary>Data moves between files and arrays in runs of at most 256 Mi floats (1 GiB).</summary>
    private const int ChunkFloats = 1 << 28;

    /// <summary>What a safetensors file holds.</summary>
    /// <param name="Tensors">The tensors, by name.</param>
    /// <param name="Metadata">The "__metadata__" map; empty when the file has none.</param>
    public sealed record Contents(IReadOnlyDictionary<string, Entry> Tensors, IReadOnlyDictionary<string, string> Metadata);

    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, int> DTypeBytes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    /// <summary>
    /// Reads a safetensors file, checking everything the format requires before a byte of data is
    /// used: the header length fits the file (and 100 MB); the header is one JSON object without
    /// duplicate names; every entry is exactly {dtype, shape, data_offsets} with a known dtype,
    /// non-negative integer dimensions and offsets (checked arithmetic: no overflow); the byte
    /// length of each region equals its shape's element count times the dtype size; the regions,
    /// in order, tile the data section exactly (no gaps, no overlaps, nothing past the end or
    /// left over); "__metadata__", when present, maps strings to strings. Only F32 tensors are
    /// returned; other dtypes are an error except PyTorch's integer BN step counters
    /// (*num_batches_tracked), which are checked and skipped. Errors are
    /// <see cref="InvalidDataException"/>s that name the file and, where there is one, the tensor.
    /// </summary>
    public static Contents Read(string path)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"'{path}' is a folder, not a safetensors file.");
        if (!File.Exists(path)) throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        // Streamed, not read whole: a SWAG checkpoint of a large network passes 2 GiB, more than one array holds.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        return Parse(stream, path);
    }

    /// <summary>The same checks as <see cref="Read"/> over bytes already in memory; <paramref name="source"/> names them in errors.</summary>
    public static Contents Parse(byte[] all, string source)
    {
        using var stream = new MemoryStream(all, writable: false);
        return Parse(stream, source);
    }

    /// <summary>The checks of <see cref="Read"/> over a seekable stream holding exactly one file.</summary>
    private static Contents Parse(Stream stream, string source)
    {
        InvalidDataException Bad(string what) => new($"'{source}' is not a valid safetensors file: {what}.");
        InvalidDataException BadTensor(string name, string what) => new($"'{source}': tensor '{name}' {what}.");

        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad($"{fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8)) throw Bad($"header length {headerLength} exceeds the file ({fileLength} bytes)");
        if (headerLength > MaxHeaderBytes) throw Bad($"header length {headerLength} is over the {MaxHeaderBytes}-byte limit");
        if (headerLength < 2) throw Bad($"header length {headerLength} is too short for a JSON object");
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);

        JsonDocument document;
        try
        {
            // A strict UTF-8 decode first: invalid bytes must not pass as replacement characters.
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(headerBytes);
            document = JsonDocument.Parse(headerBytes.AsMemory(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (Exception e) when (e is JsonException or DecoderFallbackException or ArgumentException)
        {
            throw new InvalidDataException($"'{source}' has a malformed safetensors JSON header: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad($"the header is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object");
            var tensors = new Dictionary<string, Entry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var regions = new List<(long Begin, long End, string Name)>();
            var pending = new List<(string Name, int[] Shape, long Begin, long End)>();
            foreach (var property in root.EnumerateObject())
            {
                string name = property.Name;
                if (!seen.Add(name)) throw BadTensor(name, "appears twice in the header");
                var node = property.Value;
                if (name == "__metadata__")
                {
                    if (node.ValueKind != JsonValueKind.Object) throw Bad("__metadata__ is not a JSON object");
                    foreach (var m in node.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad($"__metadata__ entry '{m.Name}' is not a string");
                        if (!metadata.TryAdd(m.Name, m.Value.GetString()!)) throw Bad($"__metadata__ entry '{m.Name}' appears twice");
                    }
                    continue;
                }
                if (node.ValueKind != JsonValueKind.Object) throw BadTensor(name, "has a header entry that is not {dtype, shape, data_offsets}");
                JsonElement dtypeNode = default, shapeNode = default, offsetsNode = default;
                int fields = 0;
                foreach (var f in node.EnumerateObject())
                {
                    fields++;
                    switch (f.Name)
                    {
                        case "dtype" when dtypeNode.ValueKind == JsonValueKind.Undefined: dtypeNode = f.Value; break;
                        case "shape" when shapeNode.ValueKind == JsonValueKind.Undefined: shapeNode = f.Value; break;
                        case "data_offsets" when offsetsNode.ValueKind == JsonValueKind.Undefined: offsetsNode = f.Value; break;
                        default: throw BadTensor(name, $"has an unexpected or repeated field '{f.Name}' (expected dtype, shape, data_offsets)");
                    }
                }
                if (fields != 3 || dtypeNode.ValueKind != JsonValueKind.String || shapeNode.ValueKind != JsonValueKind.Array || offsetsNode.ValueKind != JsonValueKind.Array)
                    throw BadTensor(name, "has a header entry that is not {dtype: string, shape: [..], data_offsets: [begin, end]}");
                string dtype = dtypeNode.GetString()!;
                if (!DTypeBytes.TryGetValue(dtype, out int elementBytes)) throw BadTensor(name, $"has an unknown dtype '{dtype}'");
                var shape = new int[shapeNode.GetArrayLength()];
                long count = 1;
                int axis = 0;
                foreach (var d in shapeNode.EnumerateArray())
                {
                    if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
                        throw BadTensor(name, $"has a shape ({shapeNode.GetRawText()}) that is not a list of non-negative integers below 2^31");
                    shape[axis++] = dim;
                    try { count = checked(count * dim); }
                    catch (OverflowException) { throw BadTensor(name, $"has a shape ({shapeNode.GetRawText()}) with more elements than a file can hold"); }
                }
                if (offsetsNode.GetArrayLength() != 2) throw BadTensor(name, $"has data_offsets {offsetsNode.GetRawText()}, not [begin, end]");
                long begin = Offset(offsetsNode[0]), end = Offset(offsetsNode[1]);
                long Offset(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) && v >= 0 ? v
                    : throw BadTensor(name, $"has data_offsets {offsetsNode.GetRawText()} that are not non-negative integers below 2^63");
                if (end < begin) throw BadTensor(name, $"has data_offsets [{begin}, {end}) that end before they begin");
                if (end > dataLength) throw BadTensor(name, $"has data_offsets [{begin}, {end}) past the end of the data ({dataLength} bytes)");
                long bytes;
                try { bytes = checked(count * elementBytes); }
                catch (OverflowException) { throw BadTensor(name, $"has a shape ({shapeNode.GetRawText()}) too large for its dtype"); }
                if (end - begin != bytes)
                    throw BadTensor(name, $"has shape ({string.Join(", ", shape)}) of {dtype}, {bytes} bytes, but data_offsets [{begin}, {end}) hold {end - begin}");
                regions.Add((begin, end, name));
                if (dtype != "F32")
                {
                    // PyTorch state_dicts carry BN's step counter as an integer; we neither need nor store it.
                    if (name.EndsWith("num_batches_tracked", StringComparison.Ordinal) && dtype is "I64" or "I32") continue;
                    throw BadTensor(name, $"has dtype {dtype}; only F32 is supported");
                }
                pending.Add((name, shape, begin, end));
            }
            // The regions must tile the data section: in order, no gap, no overlap, nothing left over.
            long at = 0;
            foreach (var r in regions.OrderBy(r => r.Begin).ThenBy(r => r.End))
            {
                if (r.Begin < at) throw BadTensor(r.Name, $"has data_offsets [{r.Begin}, {r.End}) that overlap another tensor's data");
                if (r.Begin > at) throw BadTensor(r.Name, $"has data_offsets [{r.Begin}, {r.End}) that leave a gap of {r.Begin - at} bytes before it");
                at = r.End;
            }
            if (at != dataLength) throw Bad($"the tensors cover {at} of the {dataLength} data bytes");
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Big-endian hosts are not supported.");
            var ordered = new List<Entry>(pending.Count);
            foreach (var (name, shape, begin, end) in pending.OrderBy(p => p.Begin))
            {
                long count = (end - begin) / sizeof(float);
                if (count > Array.MaxLength) throw BadTensor(name, $"holds {count} values, more than one array can");
                var data = new float[count];
                stream.Position = dataStart + begin;
                for (int from = 0; from < data.Length; from += ChunkFloats)
                    stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan(from, Math.Min(ChunkFloats, data.Length - from))));
                tensors[name] = new Entry(name, shape, data);
                ordered.Add(tensors[name]);
            }
            if (metadata.TryGetValue(ContentHashKey, out var recorded) && regions.Count == pending.Count && ContentHash(ordered) != recorded)
                throw new InvalidDataException($"'{source}' is damaged: content hash mismatch (its tensors are not what was written; {ContentHashKey} {recorded}).");
            return new Contents(tensors, metadata);
        }
    }
}
