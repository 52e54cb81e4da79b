using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>
/// The vectorised elementwise ops at every length from 0 to 256, so each vector width's main
/// loop, remainder and scalar tail (and the empty case) is hit, against scalar closed forms.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class LengthSweepTests(string backend) : BackendTest(backend)
{
    [Test]
    public void ElementwiseOpsAtEveryLengthUpTo256()
    {
        for (int n = 0; n <= 256; n++)
        {
            var a = Rng.FloatsAwayFromZero(n, 1e-3f, 2f);
            var b = Rng.Floats(n);
            var g = Rng.Floats(n);

            var y = Poisoned(n);
            B.ReluForward(Put(a, n), y);
            Close.Check(Get(y), a.Select(v => (double)Math.Max(v, 0)).ToArray(), 0, 0, $"relu n={n}");

            var dx = Put(b, n);
            B.ReluBackward(Put(a, n), Put(g, n), dx, accumulate: true);
            Close.Check(Get(dx), b.Select((v, i) => v + (a[i] > 0 ? (double)g[i] : 0)).ToArray(), 1e-7, 1e-7, $"relu backward n={n}");

            var sum = Poisoned(n);
            B.Add(Put(a, n), Put(b, n), sum);
            Close.Check(Get(sum), a.Select((v, i) => (double)v + b[i]).ToArray(), 1e-7, 1e-7, $"add n={n}");

            var avg = Put(a, n);
            B.AverageUpdate(avg, Put(b, n), 0.25f);
            Close.Check(Get(avg), a.Select((v, i) => v + 0.25 * (b[i] - v)).ToArray(), 1e-6, 1e-6, $"average n={n}");

            var w = Put(a, n);
            var vel = Put(b, n);
            B.SgdStep(w, Put(g, n), vel, new SgdHyper(0.1f, 0.9f, 1e-3f, false));
            Close.Check(Get(vel), b.Select((v, i) => 0.9 * v + (g[i] + 1e-3 * a[i])).ToArray(), 1e-6, 1e-6, $"sgd velocity n={n}");
            Close.Check(Get(w), a.Select((v, i) => v - 0.1 * (0.9 * b[i] + g[i] + 1e-3 * v)).ToArray(), 1e-6, 1e-6, $"sgd weights n={n}");
        }
    }

    [Test]
    public void BatchNormAtEveryPlaneSizeUpTo64()
    {
        // Plane sizes 1..64 exercise the vector loops and scalar tails of the per-channel passes.
        for (int hw = 1; hw <= 64; hw++)
        {
            int n = 3, c = 2;
            var x = Rng.Floats(n * c * hw, -1, 2);
            var y = Poisoned(n, c, hw, 1);
            var sm = Poisoned(c);
            var si = Poisoned(c);
            float[] gamma = [1.5f, 0.5f], beta = [0.1f, -0.2f];
            B.BatchNormForwardTraining(Put(x, n, c, hw, 1), y, Put(gamma, c), Put(beta, c), Put([0f, 0f], c), Put([1f, 1f], c), 1.0, 1e-5, sm, si);
            var (yRef, _, _) = Reference.BatchNormTrain(Close.ToDouble(x), n, c, hw, Close.ToDouble(gamma), Close.ToDouble(beta), 1e-5);
            Close.Check(Get(y), yRef, 1e-5, 1e-5, $"bn hw={hw}");
        }
    }
}
