namespace CudaSwa.Cpu;

/// <summary>
/// The CPU backend's worker pool: thin wrappers over Parallel.For with a fixed degree
/// (all cores by default; CUDASWA_CPU_THREADS overrides it).
/// </summary>
public static class CpuParallel
{
    private static int s_workers = ReadWorkers();

    public static int Workers
    {
        get => s_workers;
        set => s_workers = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), $"Need at least one worker; got {value}.");
    }

    private static int ReadWorkers()
    {
        string? env = Environment.GetEnvironmentVariable("CUDASWA_CPU_THREADS");
        return int.TryParse(env, out int n) && n >= 1 ? n : Environment.ProcessorCount;
    }

    /// <summary>Runs body(i) for i in 0..count-1, inline when there is one item or one worker.</summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (count == 1 || s_workers == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = s_workers }, body);
    }

    /// <summary>
    /// Splits [0, length) into at most Workers contiguous ranges of at least minChunk elements and
    /// runs body(start, end) on each.
    /// </summary>
    public static void ForRange(long length, long minChunk, Action<long, long> body)
    {
        if (length <= 0) return;
        int parts = (int)Math.Clamp(length / Math.Max(1, minChunk), 1, s_workers);
        if (parts == 1)
        {
            body(0, length);
            return;
        }
        long chunk = (length + parts - 1) / parts;
        chunk = (chunk + 15) / 16 * 16; // keep vector-aligned boundaries
        For(parts, p =>
        {
            long start = p * chunk;
            long end = Math.Min(length, start + chunk);
            if (start < end) body(start, end);
        });
    }
}
