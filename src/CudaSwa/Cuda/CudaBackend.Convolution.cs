using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- convolution (cuDNN)

    private CudnnConvolutions Convolutions(string op) => _convolutions ?? throw NoVendor(op, "cuDNN");

    /// <inheritdoc/>
    private protected override void PrepareConvolutionCore(ConvGeometry geometry)
    {
        if (_convolutions is null) return; // kernels only: nothing to prepare; running a convolution says why it cannot
        Ctx();
        _convolutions.Get(geometry);
    }

    private ulong WorkspacePointer => ((CudaBuffer)_convolutions!.Workspace!).Pointer;

    /// <inheritdoc/>
    private protected override void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        Ctx();
        var convolutions = Convolutions("ConvolutionForward");
        float alpha = 1, beta = 0;
        for (int attempt = 0; ; attempt++)
        {
            var plan = convolutions.Get(g);
            var status = Dnn.cudnnConvolutionForward(_cudnn, &alpha, plan.X, P(x).Address, plan.W, P(w).Address, plan.ConvForward, plan.Fwd,
                WorkspacePointer, plan.WorkspaceBytes, &beta, plan.Y, P(y).Address);
            if (convolutions.Completed(plan, status, attempt, "cudnnConvolutionForward")) break;
        }
        AfterVendorCall("cudnnConvolutionForward");
    }

    /// <inheritdoc/>
    private protected override void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        Ctx();
        var convolutions = Convolutions("ConvolutionBackwardData");
        float alpha = 1, beta = accumulate ? 1 : 0;
        for (int attempt = 0; ; attempt++)
        {
            var plan = convolutions.Get(g);
            var status = Dnn.cudnnConvolutionBackwardData(_cudnn, &alpha, plan.W, P(w).Address, plan.Y, P(dy).Address, plan.ConvBackwardData,
                plan.BwdData, WorkspacePointer, plan.WorkspaceBytes, &beta, plan.X, P(dx).Address);
            if (convolutions.Completed(plan, status, attempt, "cudnnConvolutionBackwardData")) break;
        }
        AfterVendorCall("cudnnConvolutionBackwardData");
    }

    /// <inheritdoc/>
    private protected override void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        Ctx();
        var convolutions = Convolutions("ConvolutionBackwardFilter");
        float alpha = 1, beta = 1; // parameter gradients accumulate
        for (int attempt = 0; ; attempt++)
        {
            var plan = convolutions.Get(g);
            var status = Dnn.cudnnConvolutionBackwardFilter(_cudnn, &alpha, plan.X, P(x).Address, plan.Y, P(dy).Address, plan.ConvBackwardFilter,
                plan.BwdFilter, WorkspacePointer, plan.WorkspaceBytes, &beta, plan.W, P(dw).Address);
            if (convolutions.Completed(plan, status, attempt, "cudnnConvolutionBackwardFilter")) break;
        }
        AfterVendorCall("cudnnConvolutionBackwardFilter");
    }

    /// <inheritdoc/>
    private protected override void AddChannelBiasReluCore(Tensor y, Tensor bias)
    {
        Ctx();
        Launch(Kernels.AddChannelBiasRelu, Grid(y.Length), new(P(y), P(bias), y.Length, y.Shape.C, y.Shape.H * y.Shape.W));
    }

    /// <inheritdoc/>
    private protected override void AddChannelBiasCore(Tensor y, Tensor bias)
    {
        Ctx();
        var cudnn = Cudnn("AddChannelBias");
        float alpha = 1, beta = 1;
        Dnn.Check(Dnn.cudnnAddTensor(cudnn, &alpha, Descriptor(1, y.Shape.C, 1, 1), P(bias).Address, &beta, Nchw(y), P(y).Address));
        AfterVendorCall("cudnnAddTensor");
    }

    /// <inheritdoc/>
    private protected override void ChannelBiasBackwardCore(Tensor dy, Tensor dBias)
    {
        Ctx();
        var cudnn = Cudnn("ChannelBiasBackward");
        float alpha = 1, beta = 1;
        Dnn.Check(Dnn.cudnnConvolutionBackwardBias(cudnn, &alpha, Nchw(dy), P(dy).Address, &beta, Descriptor(1, dy.Shape.C, 1, 1), P(dBias).Address));
        AfterVendorCall("cudnnConvolutionBackwardBias");
    }

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of pointwise.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Convolution.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<AddChannelBiasReluArgs> AddChannelBiasRelu = new("pointwise.cu", "add_channel_bias_relu");
    }
}

internal readonly record struct AddChannelBiasReluArgs(DevicePtr y, DevicePtr bias, long n, int channels, int hw);
