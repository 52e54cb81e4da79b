using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The emulation library itself: barriers, warp primitives, deadlock and fault reports, fused and pinned rounding.</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulationLibraryTests : EmulatedKernelTests
{
    [Test]
    public void EmulatedKernelsAreExactlyTheDeclaredOnes()
    {
        var lib = EmulationLibrary.Require();
        var emulated = lib.Kernels.Where(k => !k.File.StartsWith("emulation_", StringComparison.Ordinal)).ToDictionary(k => k.File + ":" + k.Name);
        Assert.That(emulated.Keys, Is.EquivalentTo(Kernels.All.Select(k => k.File + ":" + k.Name)), "every kernel of kernels/*.cu is emulated and declared");
        foreach (var spec in Kernels.All)
        {
            var e = emulated[spec.File + ":" + spec.Name];
            Assert.That(e.Parameters.Select(p => (p.Offset, p.Size, p.IsFloat)), Is.EqualTo(spec.Parameters.Select(p => (p.Offset, p.Size, p.IsFloat))),
                $"{spec.Name}: parameter layout of the C++ signature vs the declaration in Kernels");
        }
    }

    [Test]
    public void EmulatedSharedMemoryReductionWithBarriersIsExact([Values] Rounding rounding)
    {
        var lib = EmulationLibrary.Require(rounding);
        int blocks = 5;
        // Small integers: every partial sum is exact, so any lost or doubled term shows.
        var x = _rng.Ints(blocks * 256, -1000, 1000).Select(v => (float)v).ToArray();
        using var hx = HostArray<float>.Of(x);
        using var hout = new HostArray<float>(blocks);
        lib.Launch(SelfTest.BlockSum, (uint)blocks, Block, new(hx.Ptr, hout.Ptr));
        for (int b = 0; b < blocks; b++)
            Assert.That(hout.Span[b], Is.EqualTo(x.Skip(b * 256).Take(256).Sum()), $"block {b} ({_rng})");
    }

    /// <summary>Votes and every shuffle form against CUDA's definitions (source lanes, segment widths, out-of-segment rules).</summary>
    [Test]
    public void EmulatedWarpPrimitivesFollowCudasDefinitions()
    {
        var lib = EmulationLibrary.Require();
        int threads = 64;
        using var hout = new HostArray<int>(threads * 8);
        lib.Launch(SelfTest.WarpPrimitives, 1, (uint)threads, new(hout.Ptr));
        int ballot = 0;
        for (int l = 0; l < 32; l += 3) ballot |= 1 << l;
        for (int t = 0; t < threads; t++)
        {
            int lane = t % 32, v = 100 + lane;
            int segmentEnd = (lane / 8 + 1) * 8;
            var expected = new[]
            {
                ballot, 1, 1,
                100 + (lane + 1) % 32,                // __shfl_sync wraps within the warp
                lane + 1 < 32 ? v + 1 : v,            // __shfl_down_sync: past the end returns the caller's own value
                lane - 3 >= 0 ? v - 3 : v,            // __shfl_up_sync: before the start returns its own
                (lane ^ 8) < segmentEnd ? 100 + (lane ^ 8) : v,   // xor, width 8: earlier segments are read, later ones give the caller's own
                (lane + 5) / 16 == lane / 16 ? v + 5 : v,          // down within segments of 16
            };
            Assert.That(hout.Span.Slice(t * 8, 8).ToArray(), Is.EqualTo(expected), $"thread {t}");
        }
    }

    [Test]
    public void EmulatedDeadlockIsReportedNotHung()
    {
        var lib = EmulationLibrary.Require();
        using var timeout = lib.ShortTimeout(1);
        using var hout = new HostArray<float>(32);
        var e = Assert.Throws<EmulationException>(() => lib.Launch(SelfTest.Deadlock, 1, 32, new(hout.Ptr)));
        Assert.That(e!.Message, Does.Contain("deadlock"));
    }

    [Test]
    public void EmulatedShuffleFromAReturnedLaneIsReported()
    {
        var lib = EmulationLibrary.Require();
        using var hout = new HostArray<float>(32);
        var e = Assert.Throws<EmulationException>(() => lib.Launch(SelfTest.ShuffleFromReturnedLane, 1, 32, new(hout.Ptr)));
        Assert.That(e!.Message, Does.Contain("already returned"));
    }

    [Test]
    public void EmulatedFusedRoundingReallyFusesAndPinnedRoundingDoesNot()
    {
        // Without this, "bit-exact in both rounding modes" could pass because neither mode fuses.
        int n = 4096;
        var a = _rng.Floats(n, -3, 3);
        var b = _rng.Floats(n, -3, 3);
        var c = _rng.Floats(n, -3, 3);
        var separate = new float[n];
        for (int i = 0; i < n; i++) separate[i] = a[i] * b[i] + c[i];
        foreach (var rounding in new[] { Rounding.Separate, Rounding.Fused })
        {
            var lib = EmulationLibrary.Require(rounding);
            using var ha = HostArray<float>.Of(a);
            using var hb = HostArray<float>.Of(b);
            using var hc = HostArray<float>.Of(c);
            using var plain = new HostArray<float>(n);
            using var pinned = new HostArray<float>(n);
            lib.Launch(SelfTest.MulAdd, Grid(n), Block, new(ha.Ptr, hb.Ptr, hc.Ptr, plain.Ptr, pinned.Ptr, n));
            Same(pinned.Span, separate, $"__fadd_rn(__fmul_rn(a, b), c), {rounding}");
            int fusedDiffers = 0;
            for (int i = 0; i < n; i++) fusedDiffers += plain.Span[i] != separate[i] ? 1 : 0;
            if (rounding == Rounding.Separate) Assert.That(fusedDiffers, Is.Zero, "no contraction: a*b+c rounds twice");
            else Assert.That(fusedDiffers, Is.GreaterThan(0), "with contraction a*b+c is one FMA for some inputs");
        }
    }
}
