using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Ops;

/// <summary>The loss landscape's point op, y = origin + s·direction, on every backend against a double reference.</summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class LandscapePointTests(string backend) : BackendTest(backend)
{
    [TestCase(1)]
    [TestCase(1031)]
    [TestCase(300_007)]
    public void LandscapePointOnLineIsOriginPlusScaledDirection(int n)
    {
        var a = Rng.Floats(n, -2, 2);
        var d = Rng.Floats(n, -1, 1);
        float s = (float)(Rng.Random.NextDouble() * 6 - 3);
        var y = Poisoned(n);
        B.PointOnLine(Put(a, n), Put(d, n), s, y);
        Close.Check(Get(y), a.Select((v, i) => v + (double)s * d[i]).ToArray(), 1e-6, 1e-6, $"a + s*d, s={s} ({Rng})");
        var at0 = Poisoned(n);
        B.PointOnLine(Put(a, n), Put(d, n), 0f, at0);
        Assert.That(Get(at0), Is.EqualTo(a), "s = 0 gives the origin's values");
    }

    [Test]
    public void LandscapePointOnLineRefusesMismatchedLengthsAndNonFiniteS()
    {
        var a = Put(Rng.Floats(10), 10);
        Assert.Throws<ArgumentException>(() => B.PointOnLine(a, Put(Rng.Floats(9), 9), 1f, Poisoned(10)));
        Assert.Throws<ArgumentOutOfRangeException>(() => B.PointOnLine(a, a, float.NaN, Poisoned(10)));
    }
}
