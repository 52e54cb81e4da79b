using CudaSwa.Cpu;
using CudaSwa.Distributed;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Distributed;

/// <summary>
/// SyncBatchNorm's exchange without MPI: ranks are threads of this process (each with its own
/// CPU backend) joined by <see cref="ThreadRanks"/>, a test-only collective. A batch split into
/// unequal shards (one of them empty) must give, per shard, the whole batch's BN forward, running
/// statistics and saved statistics; and, with each rank's dy the gradient of its shard-mean loss,
/// dx in that rank's scale and dGamma/dBeta that sum (weighted by shard/batch, as the gradient
/// all-reduce weights them) to the whole batch's.
/// </summary>
public class SyncBatchNormTests
{
    private const double Eps = 1e-5;

    [Test]
    public void UnequalShardsOverThreadRanksGiveTheWholeBatch([Values] bool relu)
    {
        var rng = new Fresh();
        int c = 3, h = 4, w = 2, per = c * h * w;
        int[] shards = [3, 4, 0]; // rank 2 holds no sample of this batch
        int n = shards.Sum(), ranks = shards.Length;
        var x = rng.Floats(n * per, -2, 3);
        var gamma = rng.Floats(c, 0.5f, 1.5f);
        var beta = rng.Floats(c, -1, 1);
        var runningMean = rng.Floats(c);
        var runningVar = rng.Floats(c, 0.5f, 2f);
        var grad = rng.Floats(n * per); // the gradient of the batch's mean loss with respect to the BN's (or fused ReLU's) output

        // The whole batch on one backend.
        using var cpu = new CpuBackend();
        Tensor Put(float[] v, params int[] shape) { var t = cpu.AllocateTensor(new TensorShape(shape)); cpu.Upload<float>(v, t); return t; }
        var xt = Put(x, n, c, h, w);
        var y = cpu.AllocateTensor(TensorShape.Nchw(n, c, h, w));
        Tensor rm = Put(runningMean, c), rv = Put(runningVar, c), sm = Put(new float[c], c), si = Put(new float[c], c);
        if (relu) cpu.BatchNormReluForwardTraining(xt, y, Put(gamma, c), Put(beta, c), rm, rv, 0.1, Eps, sm, si);
        else cpu.BatchNormForwardTraining(xt, y, Put(gamma, c), Put(beta, c), rm, rv, 0.1, Eps, sm, si);
        var dx = cpu.AllocateTensor(TensorShape.Nchw(n, c, h, w));
        Tensor dg = Put(new float[c], c), db = Put(new float[c], c);
        if (relu) cpu.BatchNormReluBackward(xt, y, Put(grad, n, c, h, w), Put(gamma, c), sm, si, dx, dg, db, Eps, accumulate: false);
        else cpu.BatchNormBackward(xt, Put(grad, n, c, h, w), Put(gamma, c), sm, si, dx, dg, db, Eps, accumulate: false);
        var (yWhole, dxWhole, dgWhole, dbWhole) = (cpu.ToArray(y), cpu.ToArray(dx), cpu.ToArray(dg), cpu.ToArray(db));
        var (rmWhole, rvWhole, smWhole, siWhole) = (cpu.ToArray(rm), cpu.ToArray(rv), cpu.ToArray(sm), cpu.ToArray(si));

        // The same batch in shards, one thread per rank.
        var group = new ThreadRanks(ranks);
        var results = new RankResult[ranks];
        var threads = Enumerable.Range(0, ranks).Select(r => new Thread(() =>
        {
            try { results[r] = RunRank(group.Member(r), shards, r, x, grad, gamma, beta, runningMean, runningVar, c, h, w, relu); }
            catch (Exception e) { group.Fail(e); }
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.That(threads.All(t => t.Join(TimeSpan.FromSeconds(60))), "the ranks finished (no rank left waiting in an exchange)");
        Assert.That(group.Error, Is.Null, group.Error?.ToString());

        var sumDg = new double[c];
        var sumDb = new double[c];
        for (int r = 0, start = 0; r < ranks; start += shards[r], r++)
        {
            var range = (start * per)..((start + shards[r]) * per);
            var res = results[r];
            Close.Check(res.RunningMean, rmWhole, 1e-6, 1e-5, $"running mean on rank {r} ({rng})");
            Close.Check(res.RunningVar, rvWhole, 1e-6, 1e-5, $"running variance on rank {r}");
            Close.Check(res.SaveMean, smWhole, 1e-6, 1e-5, $"saved mean on rank {r}");
            Close.Check(res.SaveInvStd, siWhole, 1e-6, 1e-5, $"saved inverse std on rank {r}");
            if (shards[r] == 0) continue;
            Close.Check(res.Y, yWhole[range], 1e-5, 1e-5, $"y on rank {r}");
            // This rank's dy is n/shard times the batch loss's, and so is its dx.
            double scale = (double)n / shards[r];
            Close.Check(res.Dx, dxWhole[range].Select(v => v * scale).ToArray(), 1e-5, 1e-4, $"dx on rank {r} (in its shard-mean scale)");
            for (int ch = 0; ch < c; ch++)
            {
                sumDg[ch] += res.DGamma[ch] / scale;
                sumDb[ch] += res.DBeta[ch] / scale;
            }
        }
        Close.Check(dgWhole, sumDg, 1e-5, 1e-4, "dGamma: the ranks' values weighted by shard/batch and summed");
        Close.Check(dbWhole, sumDb, 1e-5, 1e-4, "dBeta: the ranks' values weighted by shard/batch and summed");
    }

    private sealed record RankResult(float[] Y, float[] Dx, float[] DGamma, float[] DBeta, float[] RunningMean, float[] RunningVar, float[] SaveMean, float[] SaveInvStd);

    private static RankResult RunRank(Collective collective, int[] shards, int rank, float[] x, float[] grad, float[] gamma, float[] beta,
        float[] runningMean, float[] runningVar, int c, int h, int w, bool relu)
    {
        using var cpu = new CpuBackend();
        Tensor Put(float[] v, params int[] shape) { var t = cpu.AllocateTensor(new TensorShape(shape)); cpu.Upload<float>(v, t); return t; }
        using var sync = new SyncBatchNorm(cpu, c, collective);
        int per = c * h * w, start = shards.Take(rank).Sum(), mine = shards[rank], n = shards.Sum();
        sync.BeginStep(mine, n);
        Tensor g = Put(gamma, c), b = Put(beta, c), rm = Put(runningMean, c), rv = Put(runningVar, c), sm = Put(new float[c], c), si = Put(new float[c], c);
        Tensor dg = Put(new float[c], c), db = Put(new float[c], c);
        if (mine == 0)
        {
            // As TrainingStep does for a rank without samples: every exchange, nothing of its own.
            sync.Forward(default, default, g, b, rm, rv, 0.1, Eps, sm, si, relu);
            sync.Backward(default, default, default, g, sm, si, default, dg, db, accumulate: false);
            return new([], [], cpu.ToArray(dg), cpu.ToArray(db), cpu.ToArray(rm), cpu.ToArray(rv), cpu.ToArray(sm), cpu.ToArray(si));
        }
        var range = (start * per)..((start + mine) * per);
        var xs = Put(x[range], mine, c, h, w);
        var y = cpu.AllocateTensor(TensorShape.Nchw(mine, c, h, w));
        sync.Forward(xs, y, g, b, rm, rv, 0.1, Eps, sm, si, relu);
        // The gradient of this shard's mean loss: n/shard times the batch-mean loss's.
        var dy = Put(grad[range].Select(v => (float)(v * n / (double)mine)).ToArray(), mine, c, h, w);
        var dx = cpu.AllocateTensor(TensorShape.Nchw(mine, c, h, w));
        sync.Backward(xs, relu ? y : default, dy, g, sm, si, dx, dg, db, accumulate: false);
        return new(cpu.ToArray(y), cpu.ToArray(dx), cpu.ToArray(dg), cpu.ToArray(db), cpu.ToArray(rm), cpu.ToArray(rv), cpu.ToArray(sm), cpu.ToArray(si));
    }
}

/// <summary>
/// Ranks that are threads of one process, for tests of code written against <see cref="Collective"/>:
/// each exchange deposits every rank's values, waits for all, and adds them in rank order (so all
/// ranks get the same bits). A failing rank breaks the barrier so the others do not wait forever.
/// </summary>
internal sealed class ThreadRanks(int size)
{
    private readonly Barrier _barrier = new(size);
    private readonly double[][] _slots = new double[size][];

    public Exception? Error { get; private set; }

    public Collective Member(int rank) => new ThreadRank(this, rank);

    public void Fail(Exception e)
    {
        Error ??= e;
        _barrier.RemoveParticipant();
    }

    private void Sum(int rank, Span<double> values)
    {
        _slots[rank] = values.ToArray();
        if (!_barrier.SignalAndWait(TimeSpan.FromSeconds(30))) throw new TimeoutException("a rank did not reach the exchange");
        values.Clear();
        for (int r = 0; r < _slots.Length; r++)
            for (int i = 0; i < values.Length; i++) values[i] += _slots[r][i];
        if (!_barrier.SignalAndWait(TimeSpan.FromSeconds(30))) throw new TimeoutException("a rank did not leave the exchange");
    }

    private sealed class ThreadRank(ThreadRanks group, int rank) : Collective
    {
        public override int Rank => rank;
        public override int Size => group._slots.Length;
        public override string Description => $"{Size} threads";

        public override void AllReduceSumDouble(Span<double> values) => group.Sum(rank, values);

        public override void AllReduceSum(Span<float> values)
        {
            var wide = new double[values.Length];
            for (int i = 0; i < wide.Length; i++) wide[i] = values[i];
            group.Sum(rank, wide);
            for (int i = 0; i < wide.Length; i++) values[i] = (float)wide[i];
        }

        public override void Broadcast(Span<byte> values, int root)
        {
            var wide = new double[values.Length];
            if (rank == root) for (int i = 0; i < wide.Length; i++) wide[i] = values[i];
            group.Sum(rank, wide);
            for (int i = 0; i < wide.Length; i++) values[i] = (byte)wide[i];
        }

        public override void Barrier() => group.Sum(rank, Span<double>.Empty);
    }
}
