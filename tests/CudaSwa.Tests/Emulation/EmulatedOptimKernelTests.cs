using Kernels = CudaSwa.Cuda.CudaBackend.Kernels;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Emulation;

/// <summary>The kernels of kernels/optim.cu, emulated on the CPU, against their CPU twins (see <see cref="EmulatedKernelTests"/>).</summary>
[NonParallelizable]
[Category("Emulated")]
public class EmulatedOptimKernelTests : EmulatedKernelTests
{
    /// <summary>
    /// The multi-tensor SWA/EMA update over pairs whose lengths straddle the chunk size and the
    /// 4-wide vector step (tails of 1..3), one pair deliberately misaligned (the scalar path), an
    /// empty pair, alpha = 1 over NaN (an exact copy) and a running mean: bit for bit against
    /// CpuBackend.AverageUpdate, in both rounding modes.
    /// </summary>
    [Test]
    public void EmulatedAverageUpdateMatchesItsTwinBitForBit([Values] Rounding rounding)
    {
        var lib = EmulationLibrary.Require(rounding);
        int chunk = CudaBackend.AverageChunk;
        int[] lengths = [1, 3, 4, 5, 0, chunk - 1, chunk, chunk + 1, 2 * chunk + 7, 50_003];
        var averages = lengths.Select(l => _rng.Floats(l, -3, 3)).ToArray();
        averages[3] = Close.Poison(lengths[3]); // NaN: the first update (alpha = 1) must overwrite it exactly
        var hostAverages = averages.Select((a, i) => HostArray<float>.Of(a, offsetElements: i == 7 ? 1 : 0)).ToArray();
        var cpuAverages = averages.Select(a => Cpu(a)).ToArray();
        try
        {
            foreach (float alpha in new[] { 1f, 1f / 3, (float)_rng.Random.NextDouble() })
            {
                var currents = lengths.Select(l => _rng.Floats(l, -3, 3)).ToArray();
                var hostCurrents = currents.Select((c, i) => HostArray<float>.Of(c, offsetElements: i == 8 ? 3 : 0)).ToArray();
                try
                {
                    var block = AverageTables.Build(lengths.Select((l, i) => new AverageTables.Pair(hostAverages[i].Ptr.Address, hostCurrents[i].Ptr.Address, l)).ToList(), chunk);
                    using var tables = HostArray<byte>.Of(block.Bytes);
                    var t = tables.Ptr;
                    lib.Launch(Kernels.AverageUpdate, (uint)block.Chunks, Block, new(t.Plus(block.AveragesOffset), t.Plus(block.CurrentsOffset), t.Plus(block.LengthsOffset),
                        t.Plus(block.ChunkPairOffset), t.Plus(block.ChunkStartOffset), chunk, alpha));
                    using var plan = _cpu.PrepareAverage(cpuAverages.Select((a, i) => new AveragePair(a, Cpu(currents[i]))).ToList());
                    _cpu.AverageUpdate(plan, alpha);
                    for (int i = 0; i < lengths.Length; i++)
                        Same(hostAverages[i].Span, Read(cpuAverages[i]), $"pair {i} (length {lengths[i]}), alpha {alpha} ({_rng})");
                }
                finally
                {
                    foreach (var h in hostCurrents) h.Dispose();
                }
            }
        }
        finally
        {
            foreach (var h in hostAverages) h.Dispose();
        }
    }

    [Test]
    public void EmulatedSgdStepMatchesItsTwinBitForBit([Values] Rounding rounding, [Values(false, true)] bool nesterov, [Values(1037, 3_000_005)] int n)
    {
        var lib = EmulationLibrary.Require(rounding);
        var w = _rng.Floats(n);
        var g = _rng.Floats(n);
        var v = _rng.Floats(n);
        var h = new SgdHyper((float)_rng.Random.NextDouble() * 0.2f, 0.9f, (float)_rng.Random.NextDouble() * 1e-3f, nesterov);
        using var hw = HostArray<float>.Of(w);
        using var hg = HostArray<float>.Of(g);
        using var hv = HostArray<float>.Of(v);
        lib.Launch(Kernels.SgdStep, Grid(n), Block, new(hw.Ptr, hg.Ptr, hv.Ptr, n, h.LearningRate, h.Momentum, h.WeightDecay, h.Nesterov));
        var tw = Cpu(w);
        var tv = Cpu(v);
        _cpu.SgdStep(tw, Cpu(g), tv, h);
        Same(hv.Span, Read(tv), $"velocity {h} ({_rng})");
        Same(hw.Span, Read(tw), $"weights {h} ({_rng})");
    }
}
