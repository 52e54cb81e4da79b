using CudaSwa.Devices;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Api;

/// <summary>
/// The note printed whenever CUDA is chosen says what docs/gpu-results.md records: "not yet
/// verified" while its Runs section holds no run, something else once it does.
/// </summary>
public class CudaVerificationNoteTests
{
    [Test]
    public void TheNoteAgreesWithTheRecordedGpuRuns()
    {
        string root = Toolchain.RepoRoot() ?? throw new IgnoreException("no sources here (a bundle): docs/gpu-results.md is not at hand");
        string doc = File.ReadAllText(Path.Combine(root, "docs", "gpu-results.md"));
        int runs = doc.IndexOf("\n## Runs", StringComparison.Ordinal);
        Assert.That(runs, Is.GreaterThan(0), "docs/gpu-results.md has a Runs section");
        string section = doc[(runs + 8)..];
        int next = section.IndexOf("\n## ", StringComparison.Ordinal);
        if (next >= 0) section = section[..next];
        bool recorded = section.Trim() != "(none yet)";
        Assert.That(EngineInfo.CudaVerification.Contains("not yet been verified", StringComparison.Ordinal), Is.EqualTo(!recorded),
            recorded ? "a GPU run is recorded: the note must say what it verified" : "no GPU run is recorded: the note must say the backend is unverified");
    }
}
