using CudaSwa.Averaging;
using CudaSwa.Optim;
using NUnit.Framework;

namespace CudaSwa.Tests.Averaging;

/// <summary>
/// Each learning-rate schedule at listed points against its reference formula. The expected
/// values in the tables were evaluated by hand / in Python from the formulas in the docs (the
/// SWA reference code's schedule, the paper's Eq. 2, PyTorch's SWALR and cosine annealing).
/// </summary>
public class ScheduleTests
{
    // SWA paper schedule, PreResNet setting: lr_init 0.1, 150-epoch budget, swa_start 126, swa_lr 0.05.
    [TestCase(0, 0.1)]
    [TestCase(63, 0.1)]
    [TestCase(88, 0.07519841269841271)]
    [TestCase(113, 0.0503968253968254)]
    [TestCase(114, 0.05)]
    [TestCase(200, 0.05)]
    public void SwaPaperScheduleWithSwa(int epoch, double expected)
    {
        var s = new SwaPaperSchedule(0.1, 150, 126, 0.05);
        for (int it = 0; it < 391; it += 130) // constant within an epoch, as in the reference code
            Assert.That(s.At(epoch, it, 391), Is.EqualTo(expected).Within(1e-12), $"epoch {epoch} iteration {it}");
    }

    [TestCase(0, 0.1)]
    [TestCase(75, 0.1)]
    [TestCase(120, 0.025749999999999995)]
    [TestCase(140, 0.001)]
    public void SwaPaperScheduleSgdBudget(int epoch, double expected) =>
        Assert.That(new SwaPaperSchedule(0.1, 150).At(epoch, 0, 100), Is.EqualTo(expected).Within(1e-12));

    // Cyclic: lr_init 0.1, swa_start 10, alpha1 0.05, alpha2 0.001, cycles of 2 epochs, 100 iterations per epoch.
    [TestCase(5, 0, 0.1)]
    [TestCase(7, 50, 0.075)]
    [TestCase(9, 99, 0.05)]
    [TestCase(10, 0, 0.049755)]                    // i = 1: t = 1/200
    [TestCase(10, 99, 0.02550)]                    // i = 100: t = 1/2
    [TestCase(11, 99, 0.001)]                      // i = 200: end of the first cycle, t = 1
    [TestCase(12, 0, 0.049755)]                    // i = 201: a new cycle
    public void CyclicSchedule(int epoch, int iteration, double expected) =>
        Assert.That(new CyclicSchedule(0.1, 10, 0.05, 0.001, 2).At(epoch, iteration, 100), Is.EqualTo(expected).Within(1e-12));

    // SWALR after cosine: lr_init 0.1 over 20 epochs, swa_start 10 (cosine has reached 0.05), swa_lr 0.02, 4 anneal epochs.
    [TestCase(AnnealStrategy.Cos, 5, 0, 0.08535533905932738)]
    [TestCase(AnnealStrategy.Cos, 10, 0, 0.05)]
    [TestCase(AnnealStrategy.Cos, 12, 0, 0.035)]
    [TestCase(AnnealStrategy.Cos, 14, 0, 0.02)]
    [TestCase(AnnealStrategy.Cos, 19, 99, 0.02)]
    [TestCase(AnnealStrategy.Linear, 11, 50, 0.03875)]
    [TestCase(AnnealStrategy.Linear, 13, 0, 0.0275)]
    public void SwalrSchedule(AnnealStrategy strategy, int epoch, int iteration, double expected) =>
        Assert.That(new SwalrSchedule(0.1, 20, 10, 0.02, 4, strategy).At(epoch, iteration, 100), Is.EqualTo(expected).Within(1e-12));

    [TestCase(0, 0, 0.1)]
    [TestCase(2, 50, 0.08535533905932738)]
    [TestCase(5, 0, 0.05)]
    [TestCase(9, 99, 2.467399070893439e-07)]       // t = 9.99/10
    public void CosineSchedule(int epoch, int iteration, double expected) =>
        Assert.That(new CosineSchedule(0.1, 10).At(epoch, iteration, 100), Is.EqualTo(expected).Within(1e-12));

    [Test]
    public void ConstantSchedule() => Assert.That(new ConstantSchedule(0.03).At(17, 3, 10), Is.EqualTo(0.03));

    [Test]
    public void AveragingEveryEpochFollowsTheReferenceCode()
    {
        // swa_start 161 (1-based count): the first average follows the 161st epoch, 0-based 160.
        var s = AveragingSchedule.Epochs(161);
        Assert.That(new[] { 159, 160, 161, 299 }.Select(s.AfterEpoch), Is.EqualTo(new[] { false, true, true, true }));
        var cycles = AveragingSchedule.Epochs(10, 2);
        Assert.That(new[] { 8, 9, 10, 11, 12 }.Select(cycles.AfterEpoch), Is.EqualTo(new[] { false, true, false, true, false }));
        var steps = AveragingSchedule.Steps(5, 10);
        Assert.That(new long[] { 5, 9, 10, 12, 15 }.Select(steps.AfterStep), Is.EqualTo(new[] { false, false, true, false, true }));
    }

    [Test]
    public void BadArgumentsAreRejectedWithTheirName()
    {
        var ex = Assert.Throws<ArgumentException>(() => new SwaPaperSchedule(0.1, 100, 50, null));
        Assert.That(ex!.Message, Does.Contain("both swaStart and swaLr"));
        var ex2 = Assert.Throws<ArgumentOutOfRangeException>(() => new CyclicSchedule(0.1, 10, 0.05, 0.001, 0));
        Assert.That(ex2!.Message, Does.Contain("cycle"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConstantSchedule(0.1).At(0, 5, 5));
    }
}
