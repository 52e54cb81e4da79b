using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// The per-shard halves of batch norm over several ranks (synchronised BN): a shard's moments
/// against the float64 closed form, and a batch cut into shards, reduced per shard, combined
/// here (parallel-axis sums, not the engine's Chan merge) and finished per shard, against the
/// whole-batch ops BatchNormForwardTraining / BatchNormBackward (and their ReLU-fused forms).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class ShardedBatchNormTests(string backend) : BackendTest(backend)
{
    private const double Eps = 1e-5;

    [TestCase(3, 4, 5, 5)]
    [TestCase(1, 3, 1, 2)]
    [TestCase(7, 2, 9, 3)]
    public void MomentsOfAShardMatchTheFloat64ClosedForm(int n, int c, int h, int w)
    {
        int hw = h * w;
        // Channels far from zero relative to their spread: a one-pass E[x^2] - E[x]^2 would cancel.
        var offsets = Rng.Floats(c, -50, 50);
        var x = Rng.Floats(n * c * hw, -0.5f, 0.5f).Select((v, i) => v + offsets[(i / hw) % c]).ToArray();
        var mean = Poisoned(c);
        var m2 = Poisoned(c);
        B.BatchNormMoments(Put(x, n, c, h, w), mean, m2);
        var (refMean, refM2) = Moments(x, n, c, hw);
        Close.Check(Get(mean), refMean, 1e-6, 1e-6, $"mean ({Rng})");
        Close.Check(Get(m2), refM2, 1e-6, 2e-5 * Tol, $"M2 ({Rng})");
    }

    [Test]
    public void ShardsCombinedGiveTheWholeBatchForwardAndBackward([Values] bool relu, [Values] bool accumulate)
    {
        int n = 7, c = 3, h = 4, w = 3, hw = h * w, per = c * hw;
        int[] cuts = [0, 2, 3, 7]; // shards of 2, 1 and 4 samples
        var x = Rng.Floats(n * per, -2, 3);
        var gamma = Rng.Floats(c, 0.5f, 1.5f);
        var beta = Rng.Floats(c, -1, 1);
        var dy = Rng.Floats(n * per);
        var priorDx = Rng.Floats(n * per);
        var dgPrior = Rng.Floats(c);
        var dbPrior = Rng.Floats(c);
        Tensor g = Put(gamma, c), bt = Put(beta, c);

        // The whole batch.
        var y = B.AllocateTensor(TensorShape.Nchw(n, c, h, w));
        var sm = B.AllocateTensor(new TensorShape(c));
        var si = B.AllocateTensor(new TensorShape(c));
        var xt = Put(x, n, c, h, w);
        Tensor rmWhole = Put(new float[c], c), rvWhole = Put(Enumerable.Repeat(1f, c).ToArray(), c);
        if (relu) B.BatchNormReluForwardTraining(xt, y, g, bt, rmWhole, rvWhole, 0.1, Eps, sm, si);
        else B.BatchNormForwardTraining(xt, y, g, bt, rmWhole, rvWhole, 0.1, Eps, sm, si);
        var yWhole = Get(y);
        var dx = accumulate ? Put(priorDx, n, c, h, w) : Poisoned(n, c, h, w);
        var dg = Put(dgPrior, c);
        var db = Put(dbPrior, c);
        if (relu) B.BatchNormReluBackward(xt, y, Put(dy, n, c, h, w), g, sm, si, dx, dg, db, Eps, accumulate);
        else B.BatchNormBackward(xt, Put(dy, n, c, h, w), g, sm, si, dx, dg, db, Eps, accumulate);
        var (dxWhole, dgWhole, dbWhole) = (Get(dx), Get(dg), Get(db));

        // Forward: each shard's moments into its row of the table BatchNormMergeShards reads, plus an
        // empty rank's row (count 0); the merge against the whole batch's statistics, and its
        // biased variance against the parallel-axis theorem in float64 over the shards' moments.
        int shards = cuts.Length - 1, row = 1 + 2 * c;
        var table = Poisoned((shards + 1) * row);
        var moments = new (int N, float[] Mean, float[] M2)[shards];
        for (int s = 0; s < shards; s++)
        {
            int ns = cuts[s + 1] - cuts[s];
            var mine = table.Slice(s * row, row);
            B.Fill(mine.Slice(0, 1), ns * hw);
            B.BatchNormMoments(Put(x[(cuts[s] * per)..(cuts[s + 1] * per)], ns, c, h, w), mine.Slice(1, c), mine.Slice(1 + c, c));
            moments[s] = (ns * hw, Get(mine.Slice(1, c)), Get(mine.Slice(1 + c, c)));
        }
        B.Fill(table.Slice(shards * row, row), 0f);
        int total = n * hw;
        Tensor rmShards = Put(new float[c], c), rvShards = Put(Enumerable.Repeat(1f, c).ToArray(), c);
        Tensor smShards = Poisoned(c), siShards = Poisoned(c), batchVarT = Poisoned(c);
        B.BatchNormMergeShards(table, shards + 1, 0.1, Eps, rmShards, rvShards, smShards, siShards, batchVarT);
        Close.Check(Get(smShards), Get(sm), 1e-6, 1e-5, "merged mean vs the whole batch's");
        Close.Check(Get(siShards), Get(si), 1e-6, 1e-5, "merged inverse std vs the whole batch's");
        Close.Check(Get(rmShards), Get(rmWhole), 1e-6, 1e-5, "running mean updated by the merge vs by the whole batch");
        Close.Check(Get(rvShards), Get(rvWhole), 1e-6, 1e-5, "running variance (unbiased) updated by the merge vs by the whole batch");
        var refVar = new double[c];
        for (int ch = 0; ch < c; ch++)
        {
            double mu = moments.Sum(m => m.N * (double)m.Mean[ch]) / total;
            refVar[ch] = moments.Sum(m => m.M2[ch] + m.N * Math.Pow(m.Mean[ch] - mu, 2)) / total;
        }
        Close.Check(Get(batchVarT), refVar, 1e-6, 1e-5, "merged biased variance vs the parallel-axis theorem");
        var batchMean = Get(smShards);
        var batchVar = Get(batchVarT);

        // Each shard normalised with the batch's statistics (inference-mode BN), then its backward halves.
        var sumDy = new double[c];
        var sumDyXhat = new double[c];
        var dgShards = Put(dgPrior, c);
        var dbShards = Put(dbPrior, c);
        var shardY = new Tensor[shards];
        for (int s = 0; s < shards; s++)
        {
            int ns = cuts[s + 1] - cuts[s];
            var xs = Put(x[(cuts[s] * per)..(cuts[s + 1] * per)], ns, c, h, w);
            shardY[s] = Poisoned(ns, c, h, w);
            if (relu) B.BatchNormReluForwardInference(xs, shardY[s], g, bt, Put(batchMean, c), Put(batchVar, c), Eps);
            else B.BatchNormForwardInference(xs, shardY[s], g, bt, Put(batchMean, c), Put(batchVar, c), Eps);
            Close.Check(Get(shardY[s]), yWhole[(cuts[s] * per)..(cuts[s + 1] * per)], 1e-5 * Tol, 1e-5 * Tol, $"y of shard {s} ({Rng})");
            var s1 = Poisoned(c);
            var s2 = Poisoned(c);
            B.BatchNormBackwardReduce(xs, relu ? shardY[s] : default, Put(dy[(cuts[s] * per)..(cuts[s + 1] * per)], ns, c, h, w), sm, si, s1, s2, dgShards, dbShards);
            var (h1, h2) = (Get(s1), Get(s2));
            for (int ch = 0; ch < c; ch++) { sumDy[ch] += h1[ch]; sumDyXhat[ch] += h2[ch]; }
        }
        Close.Check(Get(dgShards), dgWhole, 1e-5, 1e-5 * Tol, "dGamma accumulated over the shards vs the whole batch's");
        Close.Check(Get(dbShards), dbWhole, 1e-5, 1e-5 * Tol, "dBeta accumulated over the shards vs the whole batch's");
        var sumDyT = Put(sumDy.Select(v => (float)v).ToArray(), c);
        var sumDyXhatT = Put(sumDyXhat.Select(v => (float)v).ToArray(), c);
        for (int s = 0; s < shards; s++)
        {
            int ns = cuts[s + 1] - cuts[s];
            var range = (cuts[s] * per)..(cuts[s + 1] * per);
            var dxs = accumulate ? Put(priorDx[range], ns, c, h, w) : Poisoned(ns, c, h, w);
            B.BatchNormBackwardElementwise(Put(x[range], ns, c, h, w), relu ? shardY[s] : default, Put(dy[range], ns, c, h, w), g, sm, si,
                sumDyT, sumDyXhatT, total, dxs, accumulate);
            Close.Check(Get(dxs), dxWhole[range], 1e-5 * Tol, 1e-4 * Tol, $"dx of shard {s} ({Rng})");
        }
    }

    [Test]
    public void BackwardHalvesMatchTheFloat64ClosedForm([Values] bool relu)
    {
        int n = 4, c = 3, hw = 10;
        var x = Rng.Floats(n * c * hw, -2, 2);
        var y = Rng.Floats(n * c * hw, -1, 1); // a ReLU output's sign pattern; only y > 0 matters
        var dy = Rng.Floats(n * c * hw);
        var gamma = Rng.Floats(c, 0.5f, 1.5f);
        var mean = Rng.Floats(c, -0.5f, 0.5f);
        var inv = Rng.Floats(c, 0.5f, 2f);
        var s1In = Rng.Floats(c, -5, 5);
        var s2In = Rng.Floats(c, -5, 5);
        double count = 1 + Rng.Random.Next(100);
        var dg0 = Rng.Floats(c);
        var db0 = Rng.Floats(c);
        Tensor xt = Put(x, n, c, hw, 1), yt = relu ? Put(y, n, c, hw, 1) : default, dyt = Put(dy, n, c, hw, 1);
        Tensor s1 = Poisoned(c), s2 = Poisoned(c), dg = Put(dg0, c), db = Put(db0, c), dx = Poisoned(n, c, hw, 1);
        B.BatchNormBackwardReduce(xt, yt, dyt, Put(mean, c), Put(inv, c), s1, s2, dg, db);
        B.BatchNormBackwardElementwise(xt, yt, dyt, Put(gamma, c), Put(mean, c), Put(inv, c), Put(s1In, c), Put(s2In, c), count, dx, accumulate: false);
        var refS1 = new double[c];
        var refS2 = new double[c];
        var refDx = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int ch = (i / hw) % c;
            double gr = relu && !(y[i] > 0) ? 0 : dy[i];
            double xhat = (x[i] - (double)mean[ch]) * inv[ch];
            refS1[ch] += gr;
            refS2[ch] += gr * xhat;
            refDx[i] = gamma[ch] * (double)inv[ch] * (gr - s1In[ch] / count - xhat * s2In[ch] / count);
        }
        Close.Check(Get(s1), refS1, 1e-5, 1e-5 * Tol, $"sum dy ({Rng})");
        Close.Check(Get(s2), refS2, 1e-5, 1e-5 * Tol, $"sum dy*xhat ({Rng})");
        Close.Check(Get(db), refS1.Select((v, i) => v + db0[i]).ToArray(), 1e-5, 1e-5 * Tol, "dBeta += sum dy");
        Close.Check(Get(dg), refS2.Select((v, i) => v + dg0[i]).ToArray(), 1e-5, 1e-5 * Tol, "dGamma += sum dy*xhat");
        Close.Check(Get(dx), refDx, 1e-5 * Tol, 1e-5 * Tol, $"dx ({Rng})");
    }

    [Test]
    public void WrongSizesAreRefusedNamingTheArgument()
    {
        var x = Put(Rng.Floats(2 * 3 * 4), 2, 3, 2, 2);
        var ex = Assert.Throws<ArgumentException>(() => B.BatchNormMoments(x, Poisoned(3), Poisoned(2)));
        Assert.That(ex!.ParamName, Is.EqualTo("m2"));
        ex = Assert.Throws<ArgumentException>(() => B.BatchNormBackwardReduce(x, Poisoned(2, 3, 2, 1), x, Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3)));
        Assert.That(ex!.ParamName, Is.EqualTo("y"));
        ex = Assert.Throws<ArgumentException>(() => B.BatchNormBackwardElementwise(x, default, x, Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(4), Poisoned(3), 8, Poisoned(2, 3, 2, 2), false));
        Assert.That(ex!.ParamName, Is.EqualTo("sumDy"));
        var count = Assert.Throws<ArgumentOutOfRangeException>(() => B.BatchNormBackwardElementwise(x, default, x, Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3), 0, Poisoned(2, 3, 2, 2), false));
        Assert.That(count!.ParamName, Is.EqualTo("count"));
        ex = Assert.Throws<ArgumentException>(() => B.BatchNormMergeShards(Poisoned(2 * 7 - 1), 2, 0.1, Eps, Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3), Poisoned(3)));
        Assert.That(ex!.ParamName, Is.EqualTo("shards"));
        Assert.That(ex.Message, Does.Contain("2 rows of (count, 3 means, 3 M2s)"));
    }

    private static (double[] Mean, double[] M2) Moments(float[] x, int n, int c, int hw)
    {
        var mean = new double[c];
        var m2 = new double[c];
        for (int i = 0; i < x.Length; i++) mean[(i / hw) % c] += x[i];
        for (int ch = 0; ch < c; ch++) mean[ch] /= (double)n * hw;
        for (int i = 0; i < x.Length; i++) m2[(i / hw) % c] += Math.Pow(x[i] - mean[(i / hw) % c], 2);
        return (mean, m2);
    }
}
