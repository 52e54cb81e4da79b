using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/swag.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedSwagKernelTests : EmulatedKernelTests
{
    [Test]
    public void EmulatedSwagCollectMatchesItsTwin([Values] Rounding rounding, [Values(1, 4099)] int n, [Values(1f, 0.25f)] float alpha, [Values] bool deviation)
    {
        var lib = EmulationLibrary.Require(rounding);
        var w = _rng.Floats(n, -3, 3);
        var mean = _rng.Floats(n, -3, 3);
        var square = _rng.Floats(n, 0, 9);
        var poison = Close.Poison(n);
        using var hw = HostArray<float>.Of(w);
        using var hm = HostArray<float>.Of(mean);
        using var hs = HostArray<float>.Of(square);
        using var hd = HostArray<float>.Of(poison);
        lib.Launch(Kernels.SwagCollect, Grid(n), Block, new(hw.Ptr, hm.Ptr, hs.Ptr, deviation ? hd.Ptr : default, n, alpha));
        var tm = Cpu(mean);
        var ts = Cpu(square);
        var td = Cpu(poison);
        _cpu.SwagCollect(Cpu(w), tm, ts, deviation ? td : default, alpha);
        Same(hm.Span, Read(tm), $"swag_collect mean alpha={alpha} ({_rng})");
        Same(hs.Span, Read(ts), $"swag_collect mean of squares alpha={alpha} ({_rng})");
        Same(hd.Span, Read(td), $"swag_collect deviation ({_rng})");
    }

    [Test]
    public void EmulatedSwagSampleMatchesItsTwin([Values] Rounding rounding, [Values(0, 3)] int columns, [Values(5, 4099)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var mean = _rng.Floats(n, -1, 1);
        var square = mean.Select(m => m * m + 0.05f * (float)_rng.Random.NextDouble() - 0.01f).ToArray(); // some variances round below the floor
        var deviations = _rng.Floats(Math.Max(1, columns) * n, -0.5f, 0.5f);
        var normals = _rng.Floats(Math.Max(1, columns), -2, 2);
        ulong seed = (ulong)_rng.Random.NextInt64() | 1UL << 63;
        uint sample = (uint)_rng.Random.Next();
        var spec = new SwagSampleSpec(columns, 0.7f, columns > 0 ? 0.4f : 0f, 1e-6f, seed, sample);
        using var hm = HostArray<float>.Of(mean);
        using var hs = HostArray<float>.Of(square);
        using var hd = HostArray<float>.Of(deviations);
        using var hz = HostArray<float>.Of(normals);
        using var ho = HostArray<float>.Of(Close.Poison(n));
        lib.Launch(Kernels.SwagSample, Grid(n), Block, new(hm.Ptr, hs.Ptr, columns > 0 ? hd.Ptr : default, columns > 0 ? hz.Ptr : default, columns, n,
            spec.DiagonalScale, spec.LowRankScale, spec.VarianceFloor, (uint)seed, (uint)(seed >> 32), sample, ho.Ptr));
        var to = _cpu.AllocateTensor(new TensorShape(n));
        _cpu.SwagSample(Cpu(mean), Cpu(square), columns > 0 ? Cpu(deviations) : default, columns > 0 ? Cpu(normals) : default, spec, to);
        Same(ho.Span, Read(to), $"swag_sample columns={columns} ({_rng})");
    }
}
