using CudaSwa.Native;
using NUnit.Framework;
using C = CudaSwa.Native.ToolkitSelection.Candidate;

namespace CudaSwa.Tests.Cuda;

/// <summary>
/// The choice of NVRTC, cuBLAS and cuDNN (ToolkitSelection.Choose) on the layouts GPU hosts have:
/// one CUDA major for all three, the newest the driver can run, nothing newer than the driver.
/// </summary>
public class ToolkitSelectionTests
{
    private static C Nvrtc(int major, string where = "/x") => new(NativeLibraries.Nvrtc, $"{where}/libnvrtc.so.{major}", major, "", "");
    private static C Cublas(int major, string where = "/x") => new(NativeLibraries.Cublas, $"{where}/libcublas.so.{major}", major, "", "");
    private static C Cudnn(int? major, string where = "/x") => new(NativeLibraries.Cudnn, $"{where}/libcudnn.so.9", major, "9.10.0", major is null ? "could not be loaded" : "");

    [Test]
    public void TheNewestMajorThatHasAllThreeWins()
    {
        // CUDA 13 NVRTC and cuBLAS (e.g. a toolkit), but the only cuDNN was built for CUDA 12.
        var (major, picks, _) = ToolkitSelection.Choose([Nvrtc(13), Nvrtc(12), Cublas(13), Cublas(12, "/w"), Cudnn(12, "/w")], 13000, needVendor: true, boundNvrtcMajor: null);
        Assert.That(major, Is.EqualTo(12));
        Assert.That(picks[NativeLibraries.Nvrtc].Path, Is.EqualTo("/x/libnvrtc.so.12"));
        Assert.That(picks[NativeLibraries.Cublas].Path, Is.EqualTo("/w/libcublas.so.12"));
        Assert.That(picks[NativeLibraries.Cudnn].CudaMajor, Is.EqualTo(12), "never a CUDA-12 cuDNN with CUDA-13 cuBLAS/NVRTC");
    }

    [Test]
    public void NothingNewerThanTheDriverIsChosen()
    {
        var all = new[] { Nvrtc(13), Nvrtc(12), Cublas(13), Cublas(12), Cudnn(13, "/a"), Cudnn(12, "/b") };
        Assert.That(ToolkitSelection.Choose(all, 13000, true, null).Major, Is.EqualTo(13));
        Assert.That(ToolkitSelection.Choose(all, 12080, true, null).Major, Is.EqualTo(12), "a CUDA 12.8 driver cannot run CUDA 13 libraries");
        var (major, _, why) = ToolkitSelection.Choose([Nvrtc(13), Cublas(13), Cudnn(13)], 12040, true, null);
        Assert.That(major, Is.Null);
        Assert.That(why, Does.Contain("newer than the driver allows").And.Contain("libnvrtc.so.13 (CUDA 13)"));
    }

    [Test]
    public void TheFirstFileInSearchOrderIsTakenWithinAMajor()
    {
        var (_, picks, _) = ToolkitSelection.Choose([Nvrtc(13, "/first"), Nvrtc(13, "/second"), Cublas(13), Cudnn(13)], 13000, true, null);
        Assert.That(picks[NativeLibraries.Nvrtc].Path, Does.StartWith("/first/"));
    }

    [Test]
    public void WhatIsMissingIsSaid()
    {
        var (major, _, why) = ToolkitSelection.Choose([Nvrtc(13), Cublas(13)], 13000, true, null);
        Assert.That(major, Is.Null);
        Assert.That(why, Does.Contain("CUDA 13 lacks cuDNN").And.Contain("no cuDNN found"));
        (major, _, why) = ToolkitSelection.Choose([Nvrtc(13), Cublas(13), Cudnn(null)], 13000, true, null);
        Assert.That(major, Is.Null, "a cuDNN whose CUDA version could not be told is not used");
        Assert.That(why, Does.Contain("unusable").And.Contain("could not be loaded"));
    }

    [Test]
    public void KernelsAloneNeedOnlyNvrtc()
    {
        var (major, picks, _) = ToolkitSelection.Choose([Nvrtc(12), Nvrtc(13), Cublas(12)], null, needVendor: false, boundNvrtcMajor: null);
        Assert.That(major, Is.EqualTo(13), "no driver to bound it: the newest NVRTC");
        Assert.That(picks.Keys, Is.EquivalentTo(new[] { NativeLibraries.Nvrtc }));
        Assert.That(ToolkitSelection.Choose([Nvrtc(11)], null, false, null).Major, Is.EqualTo(11), "CUDA 11's NVRTC (libnvrtc.so.11.2) is usable for kernels");
    }

    [Test]
    public void AnNvrtcAlreadyBoundKeepsItsMajorWhereThatMajorIsComplete()
    {
        var all = new[] { Nvrtc(13), Nvrtc(12), Cublas(13), Cublas(12), Cudnn(13, "/a"), Cudnn(12, "/b") };
        Assert.That(ToolkitSelection.Choose(all, 13000, true, boundNvrtcMajor: 12).Major, Is.EqualTo(12));
        Assert.That(ToolkitSelection.Choose([Nvrtc(13), Nvrtc(11), Cublas(13), Cudnn(13)], 13000, true, boundNvrtcMajor: 11).Major, Is.EqualTo(13),
            "when the bound major is incomplete, the best complete one (the mismatch is reported as a warning)");
    }
}
