using CudaSwa.Util;
using NUnit.Framework;

namespace CudaSwa.Tests.Cpu;

/// <summary>Philox4x32-10 against Random123's published known-answer vectors (kat_vectors).</summary>
public class PhiloxTests
{
    [TestCase(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [TestCase(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [TestCase(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void MatchesRandom123KnownAnswers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint e0, uint e1, uint e2, uint e3)
    {
        var b = Philox.Generate(c0, c1, c2, c3, k0, k1);
        Assert.That(new[] { b.X0, b.X1, b.X2, b.X3 }, Is.EqualTo(new[] { e0, e1, e2, e3 }));
    }

    [Test]
    public void PermutationIsAPermutationAndDependsOnTheStream()
    {
        var p0 = Philox.Permutation(1000, 42, 0);
        var p1 = Philox.Permutation(1000, 42, 1);
        Assert.That(p0.OrderBy(i => i), Is.EqualTo(Enumerable.Range(0, 1000)));
        Assert.That(p0, Is.Not.EqualTo(p1));
        Assert.That(Philox.Permutation(1000, 42, 0), Is.EqualTo(p0));
    }

    [Test]
    public void NormalDrawsHaveUnitMomentsForUnitStd()
    {
        var v = new float[200_000];
        Philox.FillNormal(v, 1.0, 7, 3);
        double mean = v.Average(x => (double)x);
        double var = v.Average(x => (x - mean) * (x - mean));
        Assert.That(mean, Is.EqualTo(0).Within(0.01));
        Assert.That(var, Is.EqualTo(1).Within(0.02));
    }
}
