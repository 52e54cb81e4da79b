namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- convolution

    /// <summary>The algorithms this backend can run a shape's pass with, by name, for benchmarks that time each; empty where it runs one way of its own choosing.</summary>
    internal virtual IReadOnlyList<string> ConvolutionAlgorithms(ConvGeometry g) => [];

    /// <summary>
    /// Runs one pass with an algorithm of <see cref="ConvolutionAlgorithms"/>: forward x, w → y;
    /// backward data y, w → dx; backward filter x, y → dw (accumulating). For benchmarks.
    /// </summary>
    internal virtual void ConvolutionPassWith(string algorithm, ConvPass pass, Tensor x, Tensor w, Tensor y, Tensor dx, Tensor dw, ConvGeometry g) =>
        throw new NotSupportedException($"The {Name} backend has no choice of convolution algorithm.");

    /// <summary>The algorithm this backend runs for the shape and pass (deciding now if it has not yet, on these tensors), by name.</summary>
    internal virtual string ConvolutionAlgorithmFor(ConvPass pass, Tensor x, Tensor w, Tensor y, Tensor dx, Tensor dw, ConvGeometry g) => Name;

    /// <summary>The device's measured arithmetic ceiling in GFLOP/s and how it was reached; (0, "") where not measured.</summary>
    internal virtual (double Gflops, string How) MeasureArithmeticPeak() => (0, "");

    /// <summary>
    /// Prepares a convolution shape ahead of time (algorithm choice, scratch), so that no
    /// allocation happens inside a training step. Calling an op with an unprepared shape prepares
    /// it on the spot.
    /// </summary>
    public void PrepareConvolution(ConvGeometry geometry) => PrepareConvolutionCore(geometry);

    /// <summary>y = conv(x, w): cross-correlation as in cuDNN and PyTorch. x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q).</summary>
    public void ConvolutionForward(Tensor x, Tensor w, Tensor y, ConvSpec spec)
    {
        var g = CheckConvolution(x, w, y, spec);
        Wrote(y);
        using (new OpTimer(this, "ConvolutionForward")) ConvolutionForwardCore(x, w, y, g);
    }

    /// <summary>
    /// y = conv(x, w) + bias[k], then max(·, 0) when <paramref name="relu"/>: a convolution with its
    /// bias (e.g. a folded batch norm's) and activation applied as the output is written, where the
    /// backend can (cuDNN's ConvolutionBiasActivationForward does the same). The same values as
    /// <see cref="ConvolutionForward"/> followed by <see cref="AddChannelBias"/> or <see cref="AddChannelBiasRelu"/>.
    /// </summary>
    public void ConvolutionBiasActivationForward(Tensor x, Tensor w, Tensor bias, bool relu, Tensor y, ConvSpec spec)
    {
        var g = CheckConvolution(x, w, y, spec);
        CheckChannelBias(y, bias);
        Wrote(y);
        using (new OpTimer(this, "ConvolutionBiasActivationForward")) ConvolutionBiasActivationForwardCore(x, w, bias, relu, y, g);
    }

    /// <summary>dx = conv_transpose(dy, w), overwriting dx unless accumulate.</summary>
    public void ConvolutionBackwardData(Tensor dy, Tensor w, Tensor dx, ConvSpec spec, bool accumulate)
    {
        var g = CheckConvolution(dx, w, dy, spec);
        Wrote(dx);
        using (new OpTimer(this, "ConvolutionBackwardData")) ConvolutionBackwardDataCore(dy, w, dx, g, accumulate);
    }

    /// <summary>dw += correlation of x with dy (parameter gradients accumulate).</summary>
    public void ConvolutionBackwardFilter(Tensor x, Tensor dy, Tensor dw, ConvSpec spec)
    {
        var g = CheckConvolution(x, dw, dy, spec);
        Wrote(dw);
        using (new OpTimer(this, "ConvolutionBackwardFilter")) ConvolutionBackwardFilterCore(x, dy, dw, g);
    }

    /// <summary>y[n,c,h,w] += bias[c].</summary>
    public void AddChannelBias(Tensor y, Tensor bias)
    {
        CheckChannelBias(y, bias);
        Wrote(y);
        using (new OpTimer(this, "AddChannelBias")) AddChannelBiasCore(y, bias);
    }

    /// <summary>y = max(y + bias[c], 0) per channel, in place: a folded convolution's bias and the ReLU after it.</summary>
    public void AddChannelBiasRelu(Tensor y, Tensor bias)
    {
        CheckChannelBias(y, bias);
        Wrote(y);
        using (new OpTimer(this, "AddChannelBiasRelu")) AddChannelBiasReluCore(y, bias);
    }

    /// <summary>dBias[c] += sum over n,h,w of dy[n,c,h,w].</summary>
    public void ChannelBiasBackward(Tensor dy, Tensor dBias)
    {
        Own(dy, nameof(dy)); Own(dBias, nameof(dBias));
        RequireLength(dBias, dy.Shape.C, nameof(dBias), "one value per channel of dy");
        Wrote(dBias);
        using (new OpTimer(this, "ChannelBiasBackward")) ChannelBiasBackwardCore(dy, dBias);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="PrepareConvolution"/>.</summary>
    private protected abstract void PrepareConvolutionCore(ConvGeometry geometry);
    /// <summary>The backend's implementation of <see cref="ConvolutionForward"/>; the arguments are already validated.</summary>
    private protected abstract void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g);
    /// <summary>The backend's implementation of <see cref="ConvolutionBackwardData"/>; the arguments are already validated.</summary>
    private protected abstract void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate);
    /// <summary>The backend's implementation of <see cref="ConvolutionBackwardFilter"/>; the arguments are already validated.</summary>
    private protected abstract void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g);
    /// <summary>The backend's implementation of <see cref="AddChannelBias"/>; the arguments are already validated.</summary>
    private protected abstract void AddChannelBiasCore(Tensor y, Tensor bias);
    /// <summary>The backend's implementation of <see cref="ChannelBiasBackward"/>; the arguments are already validated.</summary>
    private protected abstract void ChannelBiasBackwardCore(Tensor dy, Tensor dBias);

    // ---------------------------------------------------------------- validation helpers

    private ConvGeometry CheckConvolution(Tensor x, Tensor w, Tensor y, ConvSpec spec)
    {
        Own(x, "x"); Own(w, "w"); Own(y, "y");
        if (x.Shape.Rank != 4 || w.Shape.Rank != 4 || y.Shape.Rank != 4)
            throw new ArgumentException($"Convolution needs rank-4 tensors; got x {x.Shape}, w {w.Shape}, y {y.Shape}.");
        if (spec.Stride < 1 || spec.Padding < 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"Stride must be >= 1 and padding >= 0; got {spec}.");
        if (w.Shape.C != x.Shape.C)
            throw new ArgumentException($"Weight {w.Shape} expects {w.Shape.C} input channels; x {x.Shape} has {x.Shape.C}.");
        var g = ConvGeometry.From(x.Shape, w.Shape, spec);
        if (g.P < 1 || g.Q < 1)
            throw new ArgumentException($"Kernel {w.Shape.H}x{w.Shape.W} with {spec} does not fit input {x.Shape}.");
        var expected = TensorShape.Nchw(x.Shape.N, w.Shape.N, g.P, g.Q);
        if (y.Shape != expected)
            throw new ArgumentException($"Convolution output has shape {y.Shape}; expected {expected} for x {x.Shape}, w {w.Shape}, {spec}.");
        return g;
    }

    /// <summary>The backend's implementation of <see cref="AddChannelBiasRelu"/>; by default the bias, then the ReLU in place.</summary>
    private protected virtual void AddChannelBiasReluCore(Tensor y, Tensor bias)
    {
        AddChannelBiasCore(y, bias);
        ReluForwardCore(y, y);
    }

    /// <summary>
    /// The backend's implementation of <see cref="ConvolutionBiasActivationForward"/>; the arguments are
    /// already validated. By default the convolution, then the bias (and ReLU) pass.
    /// </summary>
    private protected virtual void ConvolutionBiasActivationForwardCore(Tensor x, Tensor w, Tensor bias, bool relu, Tensor y, ConvGeometry g)
    {
        ConvolutionForwardCore(x, w, y, g);
        if (relu) AddChannelBiasReluCore(y, bias);
        else AddChannelBiasCore(y, bias);
    }

    private void CheckChannelBias(Tensor y, Tensor bias)
    {
        Own(y, nameof(y)); Own(bias, nameof(bias));
        RequireFloat(y, nameof(y)); RequireFloat(bias, nameof(bias));
        RequireLength(bias, y.Shape.C, nameof(bias), "one value per channel of y");
    }
}
