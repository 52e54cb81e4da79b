using System.Diagnostics;

namespace CudaSwa.Tensors;

/// <summary>
/// Accumulates wall time per backend op when attached to <see cref="Backend.Profiler"/>
/// (synchronising the device around each op, so it slows a GPU down: for diagnosis only).
/// </summary>
public sealed class OpProfiler
{
    private readonly Dictionary<string, (double Seconds, long Calls)> _totals = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (double Seconds, long Calls)> _details = new(StringComparer.Ordinal);

    /// <summary>Accumulated wall time in seconds and number of calls, per op name.</summary>
    public IReadOnlyDictionary<string, (double Seconds, long Calls)> Totals => _totals;

    internal void Add(string op, double seconds)
    {
        _totals.TryGetValue(op, out var t);
        _totals[op] = (t.Seconds + seconds, t.Calls + 1);
    }

    /// <summary>A finer line inside an op (a convolution's shape, pass and algorithm), listed after the ops, not added to their total.</summary>
    internal void AddDetail(string what, double seconds)
    {
        _details.TryGetValue(what, out var t);
        _details[what] = (t.Seconds + seconds, t.Calls + 1);
    }

    /// <summary>Forgets every total.</summary>
    public void Clear()
    {
        _totals.Clear();
        _details.Clear();
    }

    /// <summary>A table of the ops, slowest first (milliseconds, share of the total, calls), then the total.</summary>
    public string Report()
    {
        double total = _totals.Values.Sum(v => v.Seconds);
        var lines = _totals.OrderByDescending(kv => kv.Value.Seconds)
            .Select(kv => $"{kv.Key,-34} {kv.Value.Seconds * 1000,10:F1} ms {100 * kv.Value.Seconds / Math.Max(total, 1e-12),5:F1}% {kv.Value.Calls,8} calls");
        string report = string.Join(Environment.NewLine, lines) + Environment.NewLine + $"{"total",-34} {total * 1000,10:F1} ms";
        if (_details.Count == 0) return report;
        var details = _details.OrderByDescending(kv => kv.Value.Seconds)
            .Select(kv => $"  {kv.Key,-52} {kv.Value.Seconds * 1000,10:F1} ms {100 * kv.Value.Seconds / Math.Max(total, 1e-12),5:F1}% {kv.Value.Calls,8} calls");
        return report + Environment.NewLine + "by shape, pass and algorithm:" + Environment.NewLine + string.Join(Environment.NewLine, details);
    }
}

/// <summary>Times one op when a profiler is attached; a no-op struct otherwise.</summary>
internal readonly struct OpTimer : IDisposable
{
    private readonly Backend? _backend;
    private readonly string? _op;
    private readonly long _start;

    public OpTimer(Backend backend, string op)
    {
        if (backend.Profiler is null) return;
        backend.Synchronize();
        _backend = backend;
        _op = op;
        _start = Stopwatch.GetTimestamp();
    }

    public void Dispose()
    {
        if (_backend is null) return;
        _backend.Synchronize();
        _backend.Profiler!.Add(_op!, Stopwatch.GetElapsedTime(_start).TotalSeconds);
    }
}
