using CudaSwa.Cpu;
using CudaSwa.Data;
using CudaSwa.Distributed;
using CudaSwa.Layers;
using CudaSwa.Training;

// One rank of a Distributed test, started by mpiexec (or alone, as the one-process reference).
//   collectives                 every exchange of the collective seam against values computed here
//   train OUT STEPS              a short data-parallel run of a BN-free network; rank 0 writes the
//                               count, then its final weights, SWA average and initial weights to
//                               OUT (int32 and float32, little-endian)
//   train-sync-bn OUT STEPS      the same with a conv-BN network and synchronised BN, over STEPS
//                               batches of 128 and a last batch of 2 (with 3 ranks one rank gets none);
//                               rank 0 writes the same plus the BN running statistics
//   swap OUT                     SWAP on the BN-free network (phase 2 after epoch 1 of 2): every rank
//                               writes its own phase-2 weights to OUT.rank<r> just before phase 3,
//                               rank 0 the averaged weights to OUT (float32 after an int32 count)
//   bn-recompute OUT             the exact BN recompute of a fixed BN network, its batches shared
//                               between the ranks; rank 0 writes the BN running statistics to OUT
using var collective = Collective.FromLauncher(Environment.GetEnvironmentVariable);
return args.FirstOrDefault() switch
{
    "collectives" => Collectives(collective),
    "train" => Train(collective, args[1], int.Parse(args[2]), syncBatchNorm: false),
    "train-sync-bn" => Train(collective, args[1], int.Parse(args[2]), syncBatchNorm: true),
    "bn-recompute" => RecomputeBatchNorm(collective, args[1]),
    "swap" => Swap(collective, args[1]),
    _ => Usage(),
};

// A conv-BN-ReLU network with weights from a fixed seed: the ranks share the recompute's batches and
// merge their statistics; the result must be the one process's population statistics.
static int RecomputeBatchNorm(Collective c, string outFile)
{
    var (train, _) = SyntheticCifar.Generate(trainCount: 1000, testCount: 10, seed: 6);
    var b = new NetworkBuilder("bn-probe");
    Node x = b.Relu(b.BatchNorm(b.Conv(b.Input, "conv1", 8, kernel: 3, padding: 1), "bn1"));
    x = b.Relu(b.BatchNorm(b.Conv(x, "conv2", 16, kernel: 3, stride: 2, padding: 1), "bn2"));
    b.Linear(b.GlobalAvgPool(x), "fc", 10);
    using var backend = new CpuBackend();
    using var net = b.Build(backend, 128, seed: 4);
    using var data = new DeviceDataset(train, backend);
    using var loader = new BatchLoader(data, 128, shuffle: true, new CudaSwa.Tensors.AugmentSpec(), seed: 8);
    CudaSwa.Averaging.BatchNormRecompute.RunAcrossRanks(net, loader, 3, CudaSwa.Averaging.BatchNormRecomputeMode.Exact, null, c);
    var buffers = backend.ToArray(net.Buffers.All);
    if (c.IsRoot)
    {
        using var w = new BinaryWriter(File.Create(outFile));
        w.Write(buffers.Length);
        foreach (float v in buffers) w.Write(v);
    }
    Console.WriteLine($"rank {c.Rank} of {c.Size}: BN statistics recomputed ({buffers.Length} values)");
    return 0;
}

static int Swap(Collective c, string outFile)
{
    var (train, test) = SyntheticCifar.Generate(trainCount: 512, testCount: 128, seed: 5);
    var options = new TrainingOptions { Model = "dp-probe", Epochs = 2, BatchSize = 128, Lr = 0.05, SgdOnly = true, SwaStart = null, SwapPhase2 = 1, Ensemble = false, Seed = 9 };
    using var backend = new CpuBackend();
    var events = new TrainerEvents { SwapAveraging = net => Write($"{outFile}.rank{c.Rank}", backend.ToArray(net.Parameters.All)) };
    using var trainer = Trainer.ForNetwork(options, Probe, backend, train, test, outDir: null, events);
    trainer.DistributeOver(c);
    if (trainer.Run(CancellationToken.None) != RunOutcome.Completed) return 1;
    if (c.IsRoot) Write(outFile, backend.ToArray(trainer.Network.Parameters.All));
    Console.WriteLine($"rank {c.Rank} of {c.Size}: SWAP done");
    return 0;

    static void Write(string path, float[] values)
    {
        using var w = new BinaryWriter(File.Create(path));
        w.Write(values.Length);
        foreach (float v in values) w.Write(v);
    }
}

static NetworkBuilder Probe(int classes)
{
    var b = new NetworkBuilder("dp-probe");
    Node x = b.Relu(b.Conv(b.Input, "conv1", 8, kernel: 3, padding: 1, bias: true));
    x = b.Relu(b.Conv(x, "conv2", 16, kernel: 3, stride: 2, padding: 1, bias: true));
    b.Linear(b.GlobalAvgPool(x), "fc", classes);
    return b;
}

// BN fused with the ReLU after it (bn1) and BN alone before the pooling (bn2): both backward paths.
static NetworkBuilder ProbeWithBatchNorm(int classes)
{
    var b = new NetworkBuilder("dp-probe-bn");
    Node x = b.Relu(b.BatchNorm(b.Conv(b.Input, "conv1", 8, kernel: 3, padding: 1), "bn1"));
    x = b.BatchNorm(b.Conv(x, "conv2", 16, kernel: 3, stride: 2, padding: 1), "bn2");
    b.Linear(b.GlobalAvgPool(x), "fc", classes);
    return b;
}

static int Usage()
{
    Console.Error.WriteLine("usage: CudaSwa.DistributedHost collectives | train OUT STEPS | train-sync-bn OUT STEPS | swap OUT | bn-recompute OUT");
    return 2;
}

// Every rank fills its buffer with values that depend on its rank; the expected sums are computed
// here from the same formula for every rank, in rank order (exact for the integer-valued part).
static int Collectives(Collective c)
{
    var failures = new List<string>();
    const int n = 100_003;
    float Value(int rank, int i) => i % 2 == 0 ? (rank + 1) * (i % 977) : MathF.Sin(rank * 7.1f + i * 0.37f);
    var values = new float[n];
    for (int i = 0; i < n; i++) values[i] = Value(c.Rank, i);
    c.AllReduceSum(values);
    for (int i = 0; i < n; i++)
    {
        float expected = 0;
        for (int r = 0; r < c.Size; r++) expected += Value(r, i);
        // Integer-valued sums are exact in any order; the others may round differently by order.
        bool ok = i % 2 == 0 ? values[i] == expected : Math.Abs(values[i] - expected) <= 4e-7f * c.Size;
        if (!ok && failures.Count < 5) failures.Add($"float [{i}]: {values[i]:R}, expected {expected:R}");
    }
    var doubles = new double[1001];
    for (int i = 0; i < doubles.Length; i++) doubles[i] = (c.Rank + 1) * 0.5 * i;
    c.AllReduceSumDouble(doubles);
    double factor = c.Size * (c.Size + 1) / 2 * 0.5;
    for (int i = 0; i < doubles.Length; i++)
        if (doubles[i] != factor * i && failures.Count < 10) failures.Add($"double [{i}]: {doubles[i]:R}, expected {factor * i:R}");
    var bytes = new byte[300];
    if (c.Rank == c.Size - 1) for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 7 + 3);
    c.Broadcast(bytes, c.Size - 1);
    for (int i = 0; i < bytes.Length; i++)
        if (bytes[i] != (byte)(i * 7 + 3) && failures.Count < 15) failures.Add($"broadcast [{i}]: {bytes[i]}");
    c.Barrier();
    if (c.Any(c.Rank == c.Size - 1) != true) failures.Add("Any(true on the last rank) was false");
    if (c.Any(false)) failures.Add("Any(false everywhere) was true");
    c.CheckSame(42.5, "the same value");
    try
    {
        c.CheckSame(c.Rank, "a per-rank value");
        failures.Add("CheckSame accepted values that differ between ranks");
    }
    catch (InvalidOperationException e) when (e.Message.Contains("rank 0: 0", StringComparison.Ordinal) && e.Message.Contains($"rank {c.Size - 1}: {c.Size - 1}", StringComparison.Ordinal))
    {
    }
    foreach (var f in failures) Console.WriteLine($"rank {c.Rank}: MISMATCH {f}");
    Console.WriteLine($"rank {c.Rank} of {c.Size}: {(failures.Count == 0 ? "collectives ok" : "collectives FAILED")} ({c.Description})");
    return failures.Count == 0 ? 0 : 1;
}

// A BN-free network (conv-ReLU-conv-ReLU-pool-linear): its gradient does not depend on how a batch
// is split, so R ranks x (batch / R) must give the weights of 1 rank x batch up to summation order.
// With synchronised BN the same holds for a network with BN: every BN layer sees the whole batch.
static int Train(Collective c, string outFile, int steps, bool syncBatchNorm)
{
    var (train, test) = SyntheticCifar.Generate(trainCount: 128 * steps + (syncBatchNorm ? 2 : 0), testCount: 128, seed: 5);
    var options = new TrainingOptions
    {
        Model = syncBatchNorm ? "dp-probe-bn" : "dp-probe", Epochs = 2, BatchSize = 128, Lr = 0.05, SwaStart = 1, SwaLr = 0.05, Ensemble = false, Seed = 9,
        SyncBatchNorm = syncBatchNorm,
    };
    using var backend = new CpuBackend();
    using var trainer = Trainer.ForNetwork(options, syncBatchNorm ? ProbeWithBatchNorm : Probe, backend, train, test, outDir: null);
    var initial = backend.ToArray(trainer.Network.Parameters.All);
    if (c.Size > 1) trainer.DistributeOver(c);
    var outcome = trainer.Run(CancellationToken.None);
    if (outcome != RunOutcome.Completed) { Console.Error.WriteLine($"rank {c.Rank}: {outcome}"); return 1; }
    var weights = backend.ToArray(trainer.Network.Parameters.All);
    var average = backend.ToArray(trainer.Averager!.Parameters.All);
    if (c.IsRoot)
    {
        using var w = new BinaryWriter(File.Create(outFile));
        w.Write(weights.Length);
        foreach (float v in weights) w.Write(v);
        foreach (float v in average) w.Write(v);
        foreach (float v in initial) w.Write(v);
        if (syncBatchNorm)
        {
            var buffers = backend.ToArray(trainer.Network.Buffers.All);
            w.Write(buffers.Length);
            foreach (float v in buffers) w.Write(v);
        }
    }
    Console.WriteLine($"rank {c.Rank} of {c.Size}: trained {trainer.State.GlobalStep} steps, test accuracy {trainer.State.History[^1].Trained?.Accuracy:P2}");
    return 0;
}
