using CudaSwa.Tensors;

namespace CudaSwa.Layers;

/// <summary>
/// Spatial batch norm. Scale/shift are parameters; running mean/var live in the network's buffer
/// arena (so the SWA model has its own, recomputed ones). The batch mean and inverse std of the
/// last training-mode forward are kept in per-layer scratch for the backward pass and for the
/// exact BN recompute.
/// </summary>
public sealed class BatchNorm2d : Layer
{
    /// <summary>PyTorch's default: running = 0.9 * running + 0.1 * batch during training.</summary>
    public const double DefaultMomentum = 0.1;

    /// <summary>PyTorch's default, and cuDNN's minimum (CUDNN_BN_MIN_EPSILON).</summary>
    public const double Epsilon = 1e-5;

    internal BatchNorm2d(string name, Node input, int scaleIndex, int shiftIndex, int meanIndex, int varIndex)
        : base(name, [input])
    {
        ScaleIndex = scaleIndex;
        ShiftIndex = shiftIndex;
        RunningMeanIndex = meanIndex;
        RunningVarIndex = varIndex;
    }

    /// <inheritdoc/>
    public override string Kind => "BatchNorm2d";
    /// <summary>Index of the scale (gamma, "weight") in the parameter arena.</summary>
    public int ScaleIndex { get; }
    /// <summary>Index of the shift (beta, "bias") in the parameter arena.</summary>
    public int ShiftIndex { get; }
    /// <summary>Index of the running mean in the buffer arena.</summary>
    public int RunningMeanIndex { get; }
    /// <summary>Index of the running variance in the buffer arena.</summary>
    public int RunningVarIndex { get; }
    /// <summary>Channels normalised: those of the input.</summary>
    public int Channels => Inputs[0].Channels;

    /// <summary>Batch mean of the last training-mode forward (C values).</summary>
    public Tensor SavedMean { get; internal set; }

    /// <summary>1/sqrt(batch variance + eps) of the last training-mode forward (C values).</summary>
    public Tensor SavedInvStd { get; internal set; }

    /// <summary>The ReLU right after this batch norm, computed in the same pass (into the ReLU's output); null when not fused.</summary>
    internal Relu? FusedRelu { get; set; }

    /// <summary>In evaluation the convolution before this batch norm absorbs it (folded weights and bias), and this layer does nothing.</summary>
    internal bool FoldedIntoConvolution { get; set; }

    /// <summary>The node this layer's result goes to: the fused ReLU's output, or its own.</summary>
    internal Node Result => FusedRelu?.Output ?? Output;

    /// <inheritdoc/>
    protected internal override void Forward(RunContext ctx)
    {
        var p = ctx.Parameters;
        var b = ctx.Buffers;
        var y = Result.Value.WithBatch(ctx.Batch);
        if (ctx.Mode == RunMode.Eval)
        {
            if (FoldedIntoConvolution) return;
            if (FusedRelu is not null)
                ctx.Backend.BatchNormReluForwardInference(In(0, ctx), y, p[ScaleIndex], p[ShiftIndex], b[RunningMeanIndex], b[RunningVarIndex], Epsilon);
            else
                ctx.Backend.BatchNormForwardInference(In(0, ctx), y, p[ScaleIndex], p[ShiftIndex], b[RunningMeanIndex], b[RunningVarIndex], Epsilon);
            return;
        }
        double factor = ctx.Mode == RunMode.Train ? DefaultMomentum : ctx.BatchNormFactor;
        if (ctx.Mode == RunMode.Train && ctx.BatchNormSync is { } sync)
        {
            sync.Forward(In(0, ctx), y, p[ScaleIndex], p[ShiftIndex], b[RunningMeanIndex], b[RunningVarIndex], factor, Epsilon,
                SavedMean, SavedInvStd, relu: FusedRelu is not null);
            return;
        }
        if (FusedRelu is not null)
            ctx.Backend.BatchNormReluForwardTraining(In(0, ctx), y, p[ScaleIndex], p[ShiftIndex], b[RunningMeanIndex], b[RunningVarIndex],
                factor, Epsilon, SavedMean, SavedInvStd);
        else
            ctx.Backend.BatchNormForwardTraining(In(0, ctx), y, p[ScaleIndex], p[ShiftIndex], b[RunningMeanIndex], b[RunningVarIndex],
                factor, Epsilon, SavedMean, SavedInvStd);
    }

    /// <inheritdoc/>
    protected internal override void Backward(RunContext ctx)
    {
        if (!Inputs[0].RequiresGradient)
            throw new InvalidOperationException("Batch norm directly on the network input is not supported in backward.");
        if (ctx.BatchNormSync is { } sync)
        {
            var (yRelu, dy) = FusedRelu is { } fused
                ? (fused.Output.Value.WithBatch(ctx.Batch), fused.Output.Gradient.WithBatch(ctx.Batch))
                : (default, OutGrad(ctx));
            sync.Backward(In(0, ctx), yRelu, dy, ctx.Parameters[ScaleIndex], SavedMean, SavedInvStd, InGrad(0, ctx),
                ctx.Gradients[ScaleIndex], ctx.Gradients[ShiftIndex], AccumulateInput[0]);
        }
        else if (FusedRelu is { } relu)
            ctx.Backend.BatchNormReluBackward(In(0, ctx), relu.Output.Value.WithBatch(ctx.Batch), relu.Output.Gradient.WithBatch(ctx.Batch),
                ctx.Parameters[ScaleIndex], SavedMean, SavedInvStd, InGrad(0, ctx), ctx.Gradients[ScaleIndex], ctx.Gradients[ShiftIndex], Epsilon, AccumulateInput[0]);
        else
            ctx.Backend.BatchNormBackward(In(0, ctx), OutGrad(ctx), ctx.Parameters[ScaleIndex], SavedMean, SavedInvStd,
                InGrad(0, ctx), ctx.Gradients[ScaleIndex], ctx.Gradients[ShiftIndex], Epsilon, AccumulateInput[0]);
    }
}
