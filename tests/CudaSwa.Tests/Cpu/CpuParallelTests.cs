using CudaSwa.Cpu.Workers;
using CudaSwa.Cpu;
using NUnit.Framework;

namespace CudaSwa.Tests.Cpu;

/// <summary>The CPU worker pool runs every index of every loop exactly once, back to back, and reports failures.</summary>
[TestFixture]
public class CpuParallelTests
{
    [Test]
    public void BackToBackLoopsRunEveryIndexExactlyOnce()
    {
        int saved = CpuParallel.Workers;
        try
        {
            CpuParallel.Workers = Math.Max(3, Environment.ProcessorCount); // more participants than cores: late wake-ups happen
            var rng = new Random(TestContext.CurrentContext.Random.Next());
            var hits = new int[64];
            var expected = new int[64];
            for (int loop = 0; loop < 20000; loop++)
            {
                int count = rng.Next(2, 64);
                CpuParallel.For(count, i => Interlocked.Increment(ref hits[i]));
                for (int i = 0; i < count; i++) expected[i]++;
                // A loop returns only after all its indices ran: nothing may arrive late.
                if (loop % 1000 == 999) Assert.That(hits, Is.EqualTo(expected), $"after loop {loop}");
            }
            Thread.Sleep(20);
            Assert.That(hits, Is.EqualTo(expected));
        }
        finally
        {
            CpuParallel.Workers = saved;
        }
    }

    [Test]
    public void WorkerIdsAreInRange()
    {
        int workers = CpuParallel.Workers;
        var owner = new int[500];
        CpuParallel.ForEachWithWorker(owner.Length, (worker, i) => owner[i] = worker);
        Assert.That(owner, Has.All.InRange(0, workers - 1));
    }

    [Test]
    public void NestedLoopsRunInlineAndCompletely()
    {
        var cells = new int[16 * 16];
        CpuParallel.For(16, i => CpuParallel.For(16, j => cells[i * 16 + j]++));
        Assert.That(cells, Has.All.EqualTo(1));
    }

    [Test]
    public void AFailingBodySurfacesAndThePoolKeepsWorking()
    {
        if (CpuParallel.Workers == 1) Assert.Ignore("One worker: loops run inline, there is no pool to test.");
        var e = Assert.Throws<AggregateException>(() => CpuParallel.For(8, i => { if (i == 5) throw new InvalidOperationException("boom"); }));
        Assert.That(e!.InnerException, Is.TypeOf<InvalidOperationException>());
        var done = new int[8];
        CpuParallel.For(8, i => done[i] = 1);
        Assert.That(done, Has.All.EqualTo(1));
    }
}
