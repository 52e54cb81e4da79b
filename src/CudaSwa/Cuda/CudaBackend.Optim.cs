using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- optimisation and averaging

    /// <inheritdoc/>
    private protected override void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper h)
    {
        Ctx();
        Launch(Kernels.SgdStep, Grid(weights.Length),
            new(P(weights), P(gradients), P(velocity), weights.Length, h.LearningRate, h.Momentum, h.WeightDecay, h.Nesterov));
    }

    /// <summary>Elements per block of the multi-tensor average update.</summary>
    public const int AverageChunk = 16384;

    /// <inheritdoc/>
    private protected override AveragePlan PrepareAverageCore(AveragePair[] pairs)
    {
        Ctx();
        return new CudaAveragePlan(this, pairs, AverageChunk);
    }

    /// <inheritdoc/>
    private protected override void AverageUpdateCore(AveragePlan plan, float alpha)
    {
        Ctx();
        var p = (CudaAveragePlan)plan;
        if (p.Chunks == 0) return;
        Launch(Kernels.AverageUpdate, (uint)p.Chunks, new(p.Averages, p.Currents, p.Lengths, p.ChunkPair, p.ChunkStart, AverageChunk, alpha));
    }

    /// <inheritdoc/>
    private protected override void SwagCollectCore(Tensor current, Tensor mean, Tensor squareMean, Tensor deviation, float alpha)
    {
        Ctx();
        Launch(Kernels.SwagCollect, Grid(current.Length),
            new(P(current), P(mean), P(squareMean), deviation.IsNull ? default : P(deviation), current.Length, alpha));
    }

    /// <inheritdoc/>
    private protected override void SwagSampleCore(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output)
    {
        Ctx();
        bool low = spec.Columns > 0;
        Launch(Kernels.SwagSample, Grid(mean.Length),
            new(P(mean), P(squareMean), low ? P(deviations) : default, low ? P(columnNormals) : default, spec.Columns, mean.Length,
                spec.DiagonalScale, spec.LowRankScale, spec.VarianceFloor, (uint)spec.Seed, (uint)(spec.Seed >> 32), spec.Sample, P(output)));
    }

    internal static DevicePtr AddressOf(Tensor t) => P(t);

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of optim.cu, swag.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Optim.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<AverageUpdateArgs> AverageUpdate = new("optim.cu", "average_update");
        public static readonly KernelSpec<SgdStepArgs> SgdStep = new("optim.cu", "sgd_step");
        public static readonly KernelSpec<SwagCollectArgs> SwagCollect = new("swag.cu", "swag_collect");
        public static readonly KernelSpec<SwagSampleArgs> SwagSample = new("swag.cu", "swag_sample");
    }
}

/// <summary>The multi-tensor SWA/EMA update: per-pair tables (averages, currents, lengths) and per-chunk tables (pair, first element).</summary>
internal readonly record struct AverageUpdateArgs(DevicePtr averages, DevicePtr currents, DevicePtr lengths, DevicePtr chunk_pair, DevicePtr chunk_start,
    int chunk_size, float alpha);
internal readonly record struct SgdStepArgs(DevicePtr w, DevicePtr g, DevicePtr v, long n, float lr, float momentum, float wd, Flag nesterov);
internal readonly record struct SwagCollectArgs(DevicePtr w, DevicePtr mean, DevicePtr sq_mean, DevicePtr deviation, long n, float alpha);
internal readonly record struct SwagSampleArgs(DevicePtr mean, DevicePtr sq_mean, DevicePtr deviations, DevicePtr column_normals, int columns, long n,
    float diagonal_scale, float low_rank_scale, float variance_floor, uint seed_lo, uint seed_hi, uint sample, DevicePtr @out);
