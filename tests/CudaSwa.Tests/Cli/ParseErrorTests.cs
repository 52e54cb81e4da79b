using NUnit.Framework;

namespace CudaSwa.Tests.Cli;

/// <summary>Parse errors in plain words: what a value should look like, and the nearest known option or command for a typo.</summary>
public class ParseErrorTests
{
    [TestCase(new[] { "train", "--epochs", "abc" }, "--epochs expects a whole number, got 'abc'.")]
    [TestCase(new[] { "train", "--lr", "x" }, "--lr expects a number, got 'x'.")]
    [TestCase(new[] { "train", "--seed", "-1" }, "--seed expects a whole number, 0 or more, got '-1'.")]
    [TestCase(new[] { "train", "--epoch", "3" }, "'--epoch' is not an option of `cudaswa train`; did you mean --epochs?")]
    [TestCase(new[] { "train", "--swa-strat", "3" }, "did you mean --swa-start?")]
    [TestCase(new[] { "trian" }, "'trian' is not a command of `cudaswa`; did you mean 'train'?")]
    [TestCase(new[] { "evl", "--weights", "w.safetensors" }, "did you mean 'eval'?")]
    public void SaysWhatIsWrongInPlainWords(string[] args, string expected)
    {
        var r = CliRunner.Run(args);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Error, Does.Contain(expected));
        Assert.That(r.Error, Does.Not.Contain("System.").And.Not.Contain("Required command was not provided"));
    }

    [Test]
    public void TheValueOfAnUnknownOptionIsNotReportedAgain()
    {
        var r = CliRunner.Run("train", "--epoch", "3");
        Assert.That(r.Error, Does.Not.Contain("'3'"), r.Error);
    }

    [Test]
    public void AWordFarFromEveryOptionGetsNoGuess()
    {
        var r = CliRunner.Run("train", "--frobnicate");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Error, Does.Contain("'--frobnicate' is not an option of `cudaswa train`; `cudaswa train --help` lists them."));
    }
}
