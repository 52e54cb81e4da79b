using System.Diagnostics;

namespace CudaSwa.Tests.Support;

/// <summary>
/// The outside tools the CUDA checks without a GPU use, found once: clang-14 (kernels to PTX, and
/// as host C++ for the emulation), and NVIDIA's runtime compiler NVRTC 11.8 as Debian's non-free
/// package provides it (tests/tools/fetch-nvrtc.sh unpacks it into artifacts/nvrtc; .ci/run does
/// that first). Each lookup says why it failed, so a test can be ignored with the reason.
/// </summary>
public static class Toolchain
{
    /// <summary>The repository root (the folder with CudaSwa.sln), or null in a bundle without sources.</summary>
    public static string? RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "CudaSwa.sln"))) return dir.FullName;
        return null;
    }

    /// <summary>Set by .ci/run: a tool a test needs (clang-14, NVRTC, MPICH) missing is a failure there, not an ignore.</summary>
    public static bool ToolsRequired => Environment.GetEnvironmentVariable("CUDASWA_REQUIRE_TOOLS") == "1";

    /// <summary>
    /// A test that cannot run without <paramref name="tool"/>: ignored with the reason, except under
    /// CUDASWA_REQUIRE_TOOLS=1 (set by .ci/run), where it fails with the reason, so that a whole
    /// category of tests cannot quietly turn into ignores in CI.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void MissingTool(string tool, string reason)
    {
        if (ToolsRequired) NUnit.Framework.Assert.Fail($"CUDASWA_REQUIRE_TOOLS=1 but {tool} is missing: {reason}");
        NUnit.Framework.Assert.Ignore(reason);
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// A file or folder of the repository, or the test is ignored with the reason: inside the GPU
    /// bundle only the built tests travel, and a check of repository files says nothing about a GPU.
    /// </summary>
    public static string RepoPath(params string[] parts)
    {
        string? root = RepoRoot();
        if (root is null) NUnit.Framework.Assert.Ignore($"{string.Join("/", parts)} is not next to the tests (e.g. in the GPU bundle): this test checks repository files.");
        return Path.Combine([root!, .. parts]);
    }

    public static string? OnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            if (dir.Length == 0) continue;
            string c = Path.Combine(dir, name);
            if (File.Exists(c)) return c;
        }
        return null;
    }

    /// <summary>clang-14 in CUDA mode (kernels to PTX).</summary>
    public static string? Clang() => OnPath("clang-14");

    /// <summary>A C++20 compiler for host code: clang++-14, as the kernels' CPU emulation is written for it.</summary>
    public static string? ClangXX() => OnPath("clang++-14");

    /// <summary>
    /// NVRTC for the tests: CUDASWA_NVRTC if set, else artifacts/nvrtc/lib/libnvrtc.so.11.2 from
    /// tests/tools/fetch-nvrtc.sh (then CUDASWA_NVRTC is set for this process, so the engine's own
    /// loader, ToolkitSelection, takes that file), else whatever NVRTC the engine finds by itself
    /// no newer than the driver (a GPU host's). Returns null and the reason when there is none.
    /// </summary>
    public static string? Nvrtc(out string reason)
    {
        string? explicitFile = Environment.GetEnvironmentVariable("CUDASWA_NVRTC");
        if (!string.IsNullOrEmpty(explicitFile))
        {
            reason = File.Exists(explicitFile) ? "" : $"CUDASWA_NVRTC names {explicitFile}, which does not exist";
            return File.Exists(explicitFile) ? explicitFile : null;
        }
        string? root = RepoRoot();
        string? file = root is null ? null : Path.Combine(root, "artifacts", "nvrtc", "lib", "libnvrtc.so.11.2");
        if (file is null || !File.Exists(file))
        {
            try
            {
                var found = CudaSwa.Native.ToolkitSelection.ForKernels(DriverVersion());
                reason = "";
                return found.Nvrtc!.Path;
            }
            catch (DllNotFoundException e)
            {
                reason = "NVRTC is not at hand: run `bash tests/tools/fetch-nvrtc.sh` (Debian's non-free libnvrtc11.2, as .ci/run does) " +
                         $"or set CUDASWA_NVRTC to a libnvrtc.so ({e.Message})";
                return null;
            }
        }
        Environment.SetEnvironmentVariable("CUDASWA_NVRTC", file);
        reason = "";
        return file;
    }

    /// <summary>The NVIDIA driver's CUDA version when there is one, so no NVRTC newer than it is chosen.</summary>
    private static unsafe int? DriverVersion()
    {
        try
        {
            var driver = CudaSwa.Native.CuDriver.System;
            int v;
            return driver.cuDriverGetVersion(&v) == CudaSwa.Native.CuResult.Success ? v : null;
        }
        catch (DllNotFoundException) { return null; }
        catch (EntryPointNotFoundException) { return null; }
    }

    /// <summary>
    /// The `dotnet` host that runs this process's runtime, to start cudaswa.dll in a child process.
    /// Not always this process's own executable: under `dotnet test` the tests run from their apphost.
    /// </summary>
    public static string DotnetHost()
    {
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host;
        // <root>/shared/Microsoft.NETCore.App/<version>/ → <root>/dotnet
        string root = Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        string candidate = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return File.Exists(candidate) ? candidate : OnPath("dotnet") ?? "dotnet";
    }

    /// <summary>Runs a tool; returns its exit code and everything it printed.</summary>
    public static (int ExitCode, string Output) Run(string exe, IEnumerable<string> args, string? workingDirectory = null, int timeoutMs = 300_000)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{exe} did not finish within {timeoutMs / 1000} s");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
