namespace CudaSwa.Cuda;

/// <summary>
/// The tables the average_update kernel reads, as one byte block: for n pairs, averages u64[n],
/// currents u64[n], lengths i64[n]; then for every chunk (one block of the launch) its first
/// element i64[chunks] and its pair i32[chunks]. A pair of length L has ceil(L / chunk) chunks;
/// an empty pair has none.
/// </summary>
internal static class AverageTables
{
    public readonly record struct Pair(ulong Average, ulong Current, long Length);

    public sealed record Block(byte[] Bytes, int Pairs, int Chunks)
    {
        public long AveragesOffset => 0;
        public long CurrentsOffset => 8L * Pairs;
        public long LengthsOffset => 16L * Pairs;
        public long ChunkStartOffset => 24L * Pairs;
        public long ChunkPairOffset => 24L * Pairs + 8L * Chunks;
    }

    public static Block Build(IReadOnlyList<Pair> pairs, int chunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        int n = pairs.Count;
        var starts = new List<long>();
        var owners = new List<int>();
        for (int i = 0; i < n; i++)
            for (long s = 0; s < pairs[i].Length; s += chunkSize) { starts.Add(s); owners.Add(i); }
        int chunks = starts.Count;
        var bytes = new byte[24 * n + 12 * chunks];
        for (int i = 0; i < n; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(8 * i), pairs[i].Average);
            BitConverter.TryWriteBytes(bytes.AsSpan(8 * (n + i)), pairs[i].Current);
            BitConverter.TryWriteBytes(bytes.AsSpan(8 * (2 * n + i)), pairs[i].Length);
        }
        for (int c = 0; c < chunks; c++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(24 * n + 8 * c), starts[c]);
            BitConverter.TryWriteBytes(bytes.AsSpan(24 * n + 8 * chunks + 4 * c), owners[c]);
        }
        return new Block(bytes, n, chunks);
    }
}
