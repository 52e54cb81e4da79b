using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void PrepareConvolutionCore(ConvGeometry geometry) => _convolution.Prepare(geometry);
    /// <inheritdoc/>
    private protected override void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g) => _convolution.Forward(x, w, y, g);
    /// <inheritdoc/>
    private protected override void ConvolutionBiasActivationForwardCore(Tensor x, Tensor w, Tensor bias, bool relu, Tensor y, ConvGeometry g)
    {
        if (!_convolution.TryForwardWithBias(x, w, bias, relu, y, g)) base.ConvolutionBiasActivationForwardCore(x, w, bias, relu, y, g);
    }
    /// <inheritdoc/>
    private protected override void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate) => _convolution.BackwardData(dy, w, dx, g, accumulate);
    /// <inheritdoc/>
    private protected override void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g) => _convolution.BackwardFilter(x, dy, dw, g);
    /// <inheritdoc/>
    private protected override void AddChannelBiasCore(Tensor y, Tensor bias) => CpuPointwise.AddChannelBias(y, bias);
    /// <inheritdoc/>
    private protected override void AddChannelBiasReluCore(Tensor y, Tensor bias) => CpuPointwise.AddChannelBiasRelu(y, bias);
    /// <inheritdoc/>
    private protected override void ChannelBiasBackwardCore(Tensor dy, Tensor dBias) => CpuPointwise.ChannelBiasBackward(dy, dBias);
}
