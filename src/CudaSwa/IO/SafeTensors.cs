using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

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
    public sealed record Entry(string Name, int[] Shape, float[] Data);

    public static void Write(string path, IEnumerable<Entry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var t in list)
        {
            long expected = t.Shape.Aggregate(1L, (a, b) => a * b);
            if (expected != t.Data.Length)
                throw new ArgumentException($"Tensor '{t.Name}': shape ({string.Join(", ", t.Shape)}) holds {expected} values, data has {t.Data.Length}.");
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
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan()));
        });
    }

    public sealed record Contents(IReadOnlyDictionary<string, Entry> Tensors, IReadOnlyDictionary<string, string> Metadata);

    public static Contents Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        byte[] all = File.ReadAllBytes(path);
        if (all.Length < 8) throw new InvalidDataException($"'{path}' is not a safetensors file: {all.Length} bytes, shorter than the 8-byte header length.");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(all);
        if (headerLength > (ulong)(all.Length - 8))
            throw new InvalidDataException($"'{path}' is not a valid safetensors file: header length {headerLength} exceeds the file ({all.Length} bytes).");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(Encoding.UTF8.GetString(all, 8, (int)headerLength))?.AsObject()
                ?? throw new InvalidDataException("empty header");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or DecoderFallbackException or ArgumentException)
        {
            throw new InvalidDataException($"'{path}' has a malformed safetensors JSON header: {e.Message}");
        }
        long dataStart = 8 + (long)headerLength;
        var tensors = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta) metadata[k] = v is JsonValue jv && jv.TryGetValue(out string? text) ? text : v?.ToJsonString() ?? "";
                continue;
            }
            if (node is not JsonObject o || o["dtype"] is not JsonValue dtypeNode || o["shape"] is not JsonArray shapeNode || o["data_offsets"] is not JsonArray offs || offs.Count != 2)
                throw new InvalidDataException($"'{path}': the header entry of tensor '{name}' is not {{dtype, shape, data_offsets}}.");
            string dtype;
            int[] shape;
            long begin, end;
            try
            {
                dtype = dtypeNode.GetValue<string>();
                shape = shapeNode.Select(v => v!.GetValue<int>()).ToArray();
                begin = offs[0]!.GetValue<long>();
                end = offs[1]!.GetValue<long>();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new InvalidDataException($"'{path}': the header entry of tensor '{name}' has a malformed dtype, shape or data_offsets.");
            }
            if (dtype != "F32")
            {
                // PyTorch state_dicts carry BN's step counter as an integer; we neither need nor store it.
                if (name.EndsWith("num_batches_tracked", StringComparison.Ordinal)) continue;
                throw new InvalidDataException($"'{path}': tensor '{name}' has dtype {dtype}; only F32 is supported.");
            }
            long count = shape.Aggregate(1L, (a, b) => a * b);
            if (begin < 0 || end < begin || dataStart + end > all.Length || end - begin != count * sizeof(float))
                throw new InvalidDataException($"'{path}': tensor '{name}' has data offsets [{begin}, {end}) that do not fit its shape ({string.Join(", ", shape)}) or the file.");
            var data = new float[count];
            Buffer.BlockCopy(all, (int)(dataStart + begin), data, 0, (int)(end - begin));
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Big-endian hosts are not supported.");
            tensors[name] = new Entry(name, shape, data);
        }
        return new Contents(tensors, metadata);
    }
}
