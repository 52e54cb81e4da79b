using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

/// <summary>
/// What a run will hold in memory, estimated from the network's description before anything is
/// allocated: on the device (the CPU backend's "device" is host memory) the weights, gradients,
/// momentum and BN statistics, the activations and their gradients at the batch size, the average
/// and what its method keeps (SWAG's moments, LAWA's ring), the ensemble's predictions and the
/// dataset; on the host, a checkpoint's staging copies of every file it writes, plus the device
/// parts where the device is the host. A margin of a tenth covers scratch, workspaces and
/// allocator slack. <see cref="Check"/> refuses a run that cannot fit, naming needed and available.
/// </summary>
/// <param name="DeviceBytes">Bytes the backend's buffers will hold.</param>
/// <param name="HostBytes">Bytes the process adds on the host beyond the datasets already loaded (for the CPU backend, including the device parts).</param>
/// <param name="Parts">The largest contributions, named, in bytes.</param>
public sealed record MemoryEstimate(long DeviceBytes, long HostBytes, IReadOnlyList<(string Part, long Bytes)> Parts)
{
    /// <summary>The estimate for training <paramref name="network"/> with <paramref name="options"/> on <paramref name="train"/> / <paramref name="test"/>.</summary>
    public static MemoryEstimate For(NetworkBuilder network, TrainingOptions options, ImageDataset train, ImageDataset test, bool deviceIsHost)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        long p = network.Parameters.Length * sizeof(float), b = network.Buffers.Length * sizeof(float);
        long activations = 0;
        foreach (var node in network.Nodes)
            activations += node.SampleLength * options.BatchSize * sizeof(float) * (node.RequiresGradient ? 2 : 1);
        var device = new List<(string, long)>
        {
            ("weights, gradients, momentum and the BN-folded copy", 4 * p + 2 * b),
            ($"activations and their gradients at batch {options.BatchSize}", activations),
            ("the datasets", (long)train.Images.Length + test.Images.Length + 4L * (train.Count + test.Count)),
        };
        long kept = 0;
        if (options.Averaging)
        {
            device.Add(("the averaged model", p + b));
            kept = options.Average switch
            {
                AveragingKind.Swag => (1 + options.SwagRank) * p,
                AveragingKind.Lawa => options.LawaK * p,
                _ => 0,
            };
            if (kept > 0) device.Add(($"what {options.Average} keeps beyond the average", kept));
            if (options.Ensemble) device.Add(("the ensemble's test-set predictions", 2L * test.Count * train.NumClasses * sizeof(float)));
        }
        long deviceBytes = device.Sum(d => d.Item2);
        deviceBytes += deviceBytes / 10;
        // A checkpoint gathers all its files on the host before writing: weights, momentum, average, kept state.
        long staging = 2 * p + b + (options.Averaging ? p + b + kept : 0);
        var parts = device.Append(("a checkpoint's files staged on the host", staging)).OrderByDescending(x => x.Item2).ToList();
        long host = staging + (deviceIsHost ? deviceBytes : 0);
        return new MemoryEstimate(deviceBytes, host, parts);
    }

    /// <summary>
    /// Throws <see cref="InsufficientMemoryException"/> when the estimate exceeds what is available:
    /// <paramref name="deviceFree"/> bytes on the device (null: the device is the host) and
    /// <paramref name="hostAvailable"/> on the host (null: unknown, not checked).
    /// </summary>
    public void Check(long? deviceFree, long? hostAvailable, string deviceName)
    {
        if (deviceFree is long free && DeviceBytes > free)
            throw new InsufficientMemoryException($"the run needs about {GiB(DeviceBytes)} on {deviceName}, which has {GiB(free)} free ({Largest()}); nothing was allocated.");
        if (hostAvailable is long host && HostBytes > host)
            throw new InsufficientMemoryException($"the run needs about {GiB(HostBytes)} of host memory, {GiB(host)} is available ({Largest()}); nothing was allocated.");
    }

    /// <summary>Tests only: the host memory to assume available instead of asking the system.</summary>
    internal static Func<long?>? HostAvailableForTests { get => s_hostForTests.Value; set => s_hostForTests.Value = value; }
    private static readonly AsyncLocal<Func<long?>?> s_hostForTests = new();

    private string Largest() => string.Join(", ", Parts.Take(3).Select(x => $"{x.Part} {GiB(x.Bytes)}"));

    private static string GiB(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.00} GiB" : $"{bytes / (double)(1L << 20):0.#} MiB";

    /// <summary>Memory the operating system can give this process now: Linux's MemAvailable (or the container limit's remainder), else the runtime's view; null when unknown.</summary>
    public static long? HostAvailable()
    {
        if (HostAvailableForTests is { } given) return given();
        try
        {
            if (File.Exists("/proc/meminfo"))
                foreach (var line in File.ReadLines("/proc/meminfo"))
                    if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    {
                        long kib = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
                        var gc = GC.GetGCMemoryInfo();
                        // Under a container limit the runtime's total is the limit.
                        long limitLeft = gc.TotalAvailableMemoryBytes - Environment.WorkingSet;
                        return Math.Min(kib * 1024, limitLeft);
                    }
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { }
        return null;
    }
}
