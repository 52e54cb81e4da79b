using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper) => CpuOptim.SgdStep(weights, gradients, velocity, hyper);
    /// <inheritdoc/>
    private protected override AveragePlan PrepareAverageCore(AveragePair[] pairs) => new CpuAveragePlan(this, pairs);
    /// <inheritdoc/>
    private protected override void AverageUpdateCore(AveragePlan plan, float alpha) => CpuOptim.AverageUpdate((CpuAveragePlan)plan, alpha);
    /// <inheritdoc/>
    private protected override void SwagCollectCore(Tensor current, Tensor mean, Tensor squareMean, Tensor deviation, float alpha) => CpuSwag.Collect(current, mean, squareMean, deviation, alpha);
    /// <inheritdoc/>
    private protected override void SwagSampleCore(Tensor mean, Tensor squareMean, Tensor deviations, Tensor columnNormals, SwagSampleSpec spec, Tensor output) =>
        CpuSwag.Sample(mean, squareMean, deviations, columnNormals, spec, output);
}
