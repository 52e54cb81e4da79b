using CudaSwa.Data;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Data;

/// <summary>The synthetic generator and subsetting.</summary>
public class DatasetTests
{
    [Test]
    public void SyntheticDataIsDeterministicBalancedAndVaried()
    {
        var (a, ta) = SyntheticCifar.Generate(200, 50, 5);
        var (b, _) = SyntheticCifar.Generate(200, 50, 5);
        var (c, _) = SyntheticCifar.Generate(200, 50, 6);
        Assert.That(a.Images, Is.EqualTo(b.Images), "same seed, same images");
        Assert.That(a.Images, Is.Not.EqualTo(c.Images), "another seed, other images");
        Assert.That(a.Labels.GroupBy(l => l).Select(g => g.Count()), Is.All.EqualTo(20), "balanced classes");
        Assert.That(a.Images.Take(3072).ToArray(), Is.Not.EqualTo(ta.Images.Take(3072).ToArray()), "train and test are different images");
        // Not degenerate: pixel values spread over the range.
        var distinct = a.Images.Distinct().Count();
        Assert.That(distinct, Is.GreaterThan(200));
    }

    [Test]
    public void SubsetsAreClassBalancedSeededAndDrawnFromTheSet()
    {
        var rng = new Fresh();
        var (train, _) = SyntheticCifar.Generate(1000, 10, 1);
        var s1 = train.Subset(95, (ulong)rng.Seed);
        var s2 = train.Subset(95, (ulong)rng.Seed);
        var s3 = train.Subset(95, (ulong)rng.Seed + 1);
        Assert.That(s1.Count, Is.EqualTo(95));
        var counts = s1.Labels.GroupBy(l => l).Select(g => g.Count()).ToList();
        Assert.That(counts.Max() - counts.Min(), Is.LessThanOrEqualTo(1), "balanced to within one");
        Assert.That(s1.Images, Is.EqualTo(s2.Images), "same seed, same subset");
        Assert.That(s1.Images, Is.Not.EqualTo(s3.Images), "another seed, another subset");
        // Every chosen image is one of the originals with its label.
        var originals = new Dictionary<string, int>();
        for (int i = 0; i < train.Count; i++) originals[Convert.ToBase64String(train.Image(i))] = train.Labels[i];
        for (int i = 0; i < s1.Count; i++)
            Assert.That(originals[Convert.ToBase64String(s1.Image(i))], Is.EqualTo(s1.Labels[i]));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => train.Subset(1001, 1));
        Assert.That(ex!.Message, Does.Contain("1..1000"));
    }
}
