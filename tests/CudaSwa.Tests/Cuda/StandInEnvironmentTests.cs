using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// The stand-in CUDA stack as another process meets it: the four library overrides the engine
/// reads (CUDASWA_LIBCUDA, CUDASWA_NVRTC, CUDASWA_CUBLAS, CUDASWA_CUDNN) name files that exist,
/// and the cuBLAS and cuDNN names lead to the one library that also holds the stand-in driver
/// (one state for all three). tests/tools/standin.sh runs this test with CUDASWA_STANDIN_ENV=FILE
/// to build the stand-ins and learn their paths: the test then writes them there as shell exports.
/// </summary>
[Category("StandIn")]
public class StandInEnvironmentTests
{
    [Test]
    public void StandInStackIsReadyForCommands()
    {
        var env = StandIn.Environment();
        foreach (var (name, file) in env) Assert.That(File.Exists(file), Is.True, $"{name} = {file}");
        string driver = Path.GetFullPath(env["CUDASWA_LIBCUDA"]);
        foreach (var name in new[] { "CUDASWA_CUBLAS", "CUDASWA_CUDNN" })
            Assert.That(new FileInfo(env[name]).ResolveLinkTarget(returnFinalTarget: true)?.FullName, Is.EqualTo(driver), $"{name} is the driver's library");
        Assert.That(File.Exists(Path.Combine(Path.GetDirectoryName(env["CUDASWA_CUBLAS"])!, "libcublasLt.so.11")), Is.True, "cublasLt beside cuBLAS, as the engine requires");

        string? target = Environment.GetEnvironmentVariable("CUDASWA_STANDIN_ENV");
        if (!string.IsNullOrEmpty(target))
            File.WriteAllLines(target, env.Select(kv => $"export {kv.Key}='{kv.Value.Replace("'", "'\\''")}'"));
    }
}
