using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CudaSwa.IO;
using CudaSwa.Tests.Cli;
using NUnit.Framework;

namespace CudaSwa.Tests.IO;

/// <summary>
/// The safetensors reader against a corpus of malformed files (each through `cudaswa eval`: exit
/// 2, the file and the tensor named, no exception type printed) and a bounded, seeded fuzz run
/// that compares it with an independent checker of the format on mutated files.
/// </summary>
public class SafeTensorsReaderTests
{
    private string _root = "";

    [SetUp]
    public void Folder()
    {
        _root = CliRunner.TempDir("safetensors");
        Directory.CreateDirectory(_root);
    }

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static byte[] File_(string header, byte[] data, ulong? headerLength = null)
    {
        var head = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + head.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)head.Length);
        head.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + head.Length);
        return bytes;
    }

    private static byte[] Data(int bytes) => Enumerable.Range(0, bytes).Select(i => (byte)(i * 7)).ToArray();

    private const string A = "\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}";
    private const string B = "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [24, 40]}";

    /// <summary>Name, bytes, and what the error must mention (the tensor, or a phrase for file-level faults).</summary>
    private static IEnumerable<TestCaseData> Corpus()
    {
        TestCaseData Case(string name, byte[] bytes, string mentions) => new TestCaseData(bytes, mentions).SetName($"SafeTensorsRejects({name})");
        var d40 = Data(40);
        yield return Case("too short", [1, 2, 3], "shorter than the 8-byte header length");
        yield return Case("header length past the file", File_($"{{{A}, {B}}}", d40, 5000), "exceeds the file");
        yield return Case("header length 2^64-1", File_($"{{{A}, {B}}}", d40, ulong.MaxValue), "exceeds the file");
        yield return Case("header length 2^63", File_($"{{{A}, {B}}}", d40, 1UL << 63), "exceeds the file");
        yield return Case("header length 1", File_("{", [], 1), "too short");
        yield return Case("not JSON", File_("{\"a\": nope}", d40), "malformed safetensors JSON header");
        yield return Case("JSON null", File_("null", []), "not an object");
        yield return Case("JSON array", File_("[1, 2]", []), "not an object");
        yield return Case("JSON string", File_("\"text\"", []), "not an object");
        yield return Case("invalid UTF-8", [.. File_("{\"a\u00e9\": 1}", [])[..10], 0xFF, 0xFE, .. File_("{\"a\u00e9\": 1}", [])[12..]], "malformed safetensors JSON header");
        yield return Case("depth bomb", File_(new string('[', 200) + new string(']', 200), []), "malformed safetensors JSON header");
        yield return Case("entry is an array", File_("{\"a\": [1, 2]}", d40), "'a'");
        yield return Case("missing dtype", File_("{\"a\": {\"shape\": [10], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("missing shape", File_("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("missing offsets", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10]}}", d40), "'a'");
        yield return Case("extra field", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [0, 40], \"x\": 1}}", d40), "'a'");
        yield return Case("repeated field", File_("{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("unknown dtype", File_("{\"a\": {\"dtype\": \"F33\", \"shape\": [10], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("F16 where F32 is needed", File_("{\"a\": {\"dtype\": \"F16\", \"shape\": [20], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("dtype a number", File_("{\"a\": {\"dtype\": 4, \"shape\": [10], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("negative dimension", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [-10], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("fractional dimension", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5, 4], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("dimension a string", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [\"10\"], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("shape product overflows", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [2147483647, 2147483647, 2147483647], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("three offsets", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [0, 20, 40]}}", d40), "'a'");
        yield return Case("negative offset", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [-40, 0]}}", d40), "'a'");
        yield return Case("end before begin", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [40, 0]}}", d40), "'a'");
        yield return Case("end past the data", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [12], \"data_offsets\": [0, 48]}}", d40), "'a'");
        yield return Case("offsets near 2^63", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [9223372036854775767, 9223372036854775807]}}", d40), "'a'");
        yield return Case("offset beyond 2^63", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [18446744073709551576, 18446744073709551615]}}", d40), "'a'");
        yield return Case("shape and bytes disagree", File_("{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 40]}}", d40), "'a'");
        yield return Case("overlapping tensors", File_($"{{{A}, \"b\": {{\"dtype\": \"F32\", \"shape\": [6], \"data_offsets\": [16, 40]}}}}", d40), "overlap");
        yield return Case("gap between tensors", File_($"{{{A}, \"b\": {{\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [28, 40]}}}}", d40), "gap");
        yield return Case("duplicate tensor name", File_($"{{{A}, {A}}}", Data(24)), "'a' appears twice");
        yield return Case("duplicate metadata key", File_($"{{\"__metadata__\": {{\"k\": \"1\", \"k\": \"2\"}}, {A}}}", Data(24)), "'k'");
        yield return Case("metadata not an object", File_($"{{\"__metadata__\": [1], {A}}}", Data(24)), "__metadata__");
        yield return Case("metadata value not a string", File_($"{{\"__metadata__\": {{\"k\": 3}}, {A}}}", Data(24)), "'k'");
        yield return Case("bytes left over", File_($"{{{A}, {B}}}", Data(48)), "cover 40 of the 48");
        yield return Case("truncated data", File_($"{{{A}, {B}}}", Data(40))[..^5], "'b'");
        yield return Case("empty header", File_("", d40), "too short");
    }

    [TestCaseSource(nameof(Corpus))]
    public void SafeTensorsRejects(byte[] bytes, string mentions)
    {
        string path = Path.Combine(_root, "weights.safetensors");
        File.WriteAllBytes(path, bytes);
        var direct = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.That(direct!.Message, Does.Contain(path).And.Contain(mentions));

        var r = CliRunner.Run("eval", "--weights", path, "--model", "resnet8", "--device", "cpu");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain(path).And.Contain(mentions));
        Assert.That(r.All, Does.Not.Contain("Exception"), "no exception type reaches the user");
    }

    [Test]
    public void SafeTensorsAcceptsTheReferenceLayoutAndSkipsIntegerStepCounters()
    {
        // Header order differs from data order (the reference writer orders the header by name): allowed.
        string path = Path.Combine(_root, "ok.safetensors");
        File.WriteAllBytes(path, File_($"{{\"__metadata__\": {{\"format\": \"pt\"}}, {B.Replace("[24, 40]", "[8, 24]")}, " +
            "\"bn.num_batches_tracked\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]}, " +
            A.Replace("[0, 24]", "[24, 48]") + "}", Data(48)));
        var c = SafeTensors.Read(path);
        Assert.That(c.Tensors.Keys, Is.EquivalentTo(new[] { "a", "b" }));
        Assert.That(c.Tensors["a"].Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That(c.Metadata["format"], Is.EqualTo("pt"));
        var raw = new float[6];
        Buffer.BlockCopy(Data(48), 24, raw, 0, 24);
        Assert.That(c.Tensors["a"].Data, Is.EqualTo(raw));
    }

    [Test]
    public void SafeTensorsWriterRefusesDuplicateNames()
    {
        var e = Assert.Throws<ArgumentException>(() => SafeTensors.Write(Path.Combine(_root, "x.safetensors"),
            [new SafeTensors.Entry("w", [1], [1f]), new SafeTensors.Entry("w", [1], [2f])]));
        Assert.That(e!.Message, Does.Contain("'w'"));
    }

    // ---------------------------------------------------------------- fuzzing

    /// <summary>
    /// Seeded mutations of valid files (bytes of the header flipped, digits changed, characters
    /// inserted or removed, keys duplicated, the length field and the data cut or extended), each
    /// read by the reader and by <see cref="Oracle"/>, an independent, plain reading of the format:
    /// the reader never fails with anything but InvalidDataException, accepts exactly the files the
    /// oracle accepts, and then returns the same tensors. A fixed 200,000 cases (the same on every machine, however fast; about 6 s here).
    /// </summary>
    [Test]
    public void SafeTensorsFuzzedHeadersAreAcceptedExactlyWhenValid()
    {
        var rng = new Random(20261128);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int cases = 0, accepted = 0;
        while (cases < 200_000)
        {
            byte[] file = Mutate(ValidFile(rng), rng);
            cases++;
            SafeTensors.Contents? read = null;
            string? rejected = null;
            try { read = SafeTensors.Parse(file, "fuzz"); }
            catch (InvalidDataException e) { rejected = e.Message; }
            catch (Exception e) { Assert.Fail($"case {cases}: {e.GetType().Name} escaped the reader: {e.Message}\n{Describe(file)}"); }
            var expected = Oracle(file);
            if (read is null)
            {
                Assert.That(expected, Is.Null, $"case {cases}: rejected a valid file ({rejected})\n{Describe(file)}");
                continue;
            }
            accepted++;
            Assert.That(expected, Is.Not.Null, $"case {cases}: accepted a file that breaks the format\n{Describe(file)}");
            Assert.That(read.Tensors.Keys, Is.EquivalentTo(expected!.Keys), $"case {cases}: tensor names");
            foreach (var (name, data) in expected)
                Assert.That(read.Tensors[name].Data, Is.EqualTo(data), $"case {cases}: data of '{name}'");
        }
        TestContext.Out.WriteLine($"{cases} fuzzed files in {clock.Elapsed.TotalSeconds:F1} s, {accepted} accepted");
        Assert.That(accepted, Is.GreaterThan(0).And.LessThan(cases), "the mutations produce both valid and invalid files");
    }

    private static byte[] ValidFile(Random rng)
    {
        var header = new JsonObject();
        if (rng.Next(3) == 0) header["__metadata__"] = new JsonObject { ["format"] = "pt", ["k" + rng.Next(10)] = "v" };
        int count = rng.Next(1, 4);
        long offset = 0;
        var data = new List<byte>();
        for (int t = 0; t < count; t++)
        {
            var shape = Enumerable.Range(0, rng.Next(0, 3)).Select(_ => rng.Next(0, 4)).ToArray();
            long elements = shape.Aggregate(1L, (a, b) => a * b);
            bool counter = rng.Next(6) == 0;
            long bytes = elements * (counter ? 8 : 4);
            header[counter ? $"t{t}.num_batches_tracked" : $"t{t}"] = new JsonObject
            {
                ["dtype"] = counter ? "I64" : "F32",
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            for (long i = 0; i < bytes; i++) data.Add((byte)rng.Next(256));
            offset += bytes;
        }
        return File_(header.ToJsonString(), [.. data]);
    }

    private static byte[] Mutate(byte[] file, Random rng)
    {
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var head = new List<byte>(file[8..(8 + headerLength)]);
        var data = new List<byte>(file[(8 + headerLength)..]);
        ulong? lengthField = null;
        int mutations = rng.Next(1, 3);
        for (int m = 0; m < mutations; m++)
        {
            int at = head.Count == 0 ? 0 : rng.Next(head.Count);
            switch (rng.Next(9))
            {
                case 0: if (head.Count > 0) head[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1:
                    var digits = Enumerable.Range(0, head.Count).Where(i => head[i] is >= (byte)'0' and <= (byte)'9').ToList();
                    if (digits.Count > 0) head[digits[rng.Next(digits.Count)]] = (byte)('0' + rng.Next(10));
                    break;
                case 2:
                    var alphabet = "{}[],:\"-0123456789 e."u8;
                    head.Insert(at, alphabet[rng.Next(alphabet.Length)]);
                    break;
                case 3: if (head.Count > 0) head.RemoveAt(at); break;
                case 4:
                    // Duplicate the first tensor entry under its own name.
                    string text = Encoding.UTF8.GetString([.. head]);
                    int close = text.IndexOf('}', StringComparison.Ordinal);
                    if (text.StartsWith("{\"", StringComparison.Ordinal) && close > 0 && text.Length > close + 1)
                        head = [.. Encoding.UTF8.GetBytes("{" + text[1..(close + 1)] + "," + text[1..])];
                    break;
                case 5: lengthField = (ulong)Math.Max(0, head.Count + rng.Next(-3, 4)); break;
                case 6: if (data.Count > 0) data.RemoveRange(rng.Next(data.Count), 1); break;
                case 7: data.Add((byte)rng.Next(256)); break;
                default:
                    // Swap two numbers of the header.
                    string s = Encoding.UTF8.GetString([.. head]);
                    var numbers = System.Text.RegularExpressions.Regex.Matches(s, @"\d+");
                    if (numbers.Count >= 2)
                    {
                        var x = numbers[rng.Next(numbers.Count)];
                        var y = numbers[rng.Next(numbers.Count)];
                        if (x.Index > y.Index) (x, y) = (y, x);
                        if (x.Index + x.Length <= y.Index)
                            s = s[..x.Index] + y.Value + s[(x.Index + x.Length)..y.Index] + x.Value + s[(y.Index + y.Length)..];
                        head = [.. Encoding.UTF8.GetBytes(s)];
                    }
                    break;
            }
        }
        var bytes = new byte[8 + head.Count + data.Count];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField ?? (ulong)head.Count);
        head.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + head.Count);
        return bytes;
    }

    /// <summary>
    /// An independent reading of the format, written plainly: the F32 tensors of a valid file, or
    /// null. Valid: length field within the file; header a JSON object (strict UTF-8) without
    /// duplicate keys at any level; metadata a map of strings; every other entry exactly dtype
    /// (a known name), shape (integers 0..2^31-1) and two offsets (integers 0..2^63-1, begin &lt;=
    /// end &lt;= data size) whose difference is the element count times the dtype size; regions
    /// sorted by begin tile the data exactly; non-F32 only for *num_batches_tracked as I64/I32.
    /// </summary>
    private static Dictionary<string, float[]>? Oracle(byte[] file)
    {
        if (file.Length < 8) return null;
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (n > (ulong)(file.Length - 8) || n < 2) return null;
        byte[] head = file[8..(8 + (int)n)];
        try { new UTF8Encoding(false, true).GetString(head); }
        catch (DecoderFallbackException) { return null; }
        if (HasDuplicateKeys(head)) return null;
        JsonNode? root;
        try { root = JsonNode.Parse(head); }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException) { return null; }
        if (root is not JsonObject obj) return null;
        long dataSize = file.Length - 8 - (long)n;
        var sizes = new Dictionary<string, int> { ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1, ["I16"] = 2, ["U16"] = 2, ["F16"] = 2,
            ["BF16"] = 2, ["I32"] = 4, ["U32"] = 4, ["F32"] = 4, ["I64"] = 8, ["U64"] = 8, ["F64"] = 8 };
        var regions = new List<(decimal Begin, decimal End)>();
        var result = new Dictionary<string, float[]>();
        foreach (var (name, node) in obj)
        {
            if (name == "__metadata__")
            {
                if (node is not JsonObject meta || meta.Any(kv => kv.Value is not JsonValue v || v.GetValueKind() != JsonValueKind.String)) return null;
                continue;
            }
            if (node is not JsonObject e || e.Count != 3 || e["dtype"] is not JsonValue dt || dt.GetValueKind() != JsonValueKind.String
                || e["shape"] is not JsonArray shape || e["data_offsets"] is not JsonArray offs || offs.Count != 2) return null;
            string dtype = dt.GetValue<string>();
            if (!sizes.TryGetValue(dtype, out int size)) return null;
            decimal elements = 1;
            foreach (var dim in shape)
            {
                if (dim is not JsonValue dv || dv.GetValueKind() != JsonValueKind.Number || !decimal.TryParse(dv.ToJsonString(), out decimal d)
                    || d != decimal.Truncate(d) || d < 0 || d > int.MaxValue || dv.ToJsonString().Contains('.') || dv.ToJsonString().Contains('e') || dv.ToJsonString().Contains('E')) return null;
                elements *= d;
                if (elements > long.MaxValue) return null;
            }
            var bounds = new decimal[2];
            for (int i = 0; i < 2; i++)
            {
                if (offs[i] is not JsonValue ov || ov.GetValueKind() != JsonValueKind.Number) return null;
                string raw = ov.ToJsonString();
                if (raw.Contains('.') || raw.Contains('e') || raw.Contains('E') || !decimal.TryParse(raw, out bounds[i]) || bounds[i] < 0 || bounds[i] > long.MaxValue) return null;
            }
            if (bounds[1] < bounds[0] || bounds[1] > dataSize || bounds[1] - bounds[0] != elements * size) return null;
            regions.Add((bounds[0], bounds[1]));
            if (dtype != "F32")
            {
                if (name.EndsWith("num_batches_tracked", StringComparison.Ordinal) && dtype is "I64" or "I32") continue;
                return null;
            }
            var floats = new float[(int)(elements)];
            Buffer.BlockCopy(file, 8 + (int)n + (int)bounds[0], floats, 0, (int)(bounds[1] - bounds[0]));
            result[name] = floats;
        }
        decimal at = 0;
        foreach (var r in regions.OrderBy(r => r.Begin).ThenBy(r => r.End))
        {
            if (r.Begin != at) return null;
            at = r.End;
        }
        return at == dataSize ? result : null;
    }

    private static bool HasDuplicateKeys(byte[] json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 16 });
            var stack = new Stack<HashSet<string>>();
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject: stack.Push([]); break;
                    case JsonTokenType.EndObject: stack.Pop(); break;
                    case JsonTokenType.PropertyName:
                        if (!stack.Peek().Add(reader.GetString()!)) return true;
                        break;
                }
            }
            return false;
        }
        catch (JsonException) { return true; } // not parseable: treated as invalid either way
    }

    private static string Describe(byte[] file) =>
        $"{file.Length} bytes, length field {BinaryPrimitives.ReadUInt64LittleEndian(file)}, header: {Encoding.UTF8.GetString(file, 8, Math.Min(file.Length - 8, 400))}";
}
