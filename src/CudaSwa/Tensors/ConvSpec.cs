namespace CudaSwa.Tensors;

/// <summary>Stride and zero padding of a 2-D convolution (square kernels, same in both axes).</summary>
/// <param name="Stride">Stride in both axes.</param>
/// <param name="Padding">Zero padding on every side.</param>
public readonly record struct ConvSpec(int Stride, int Padding)
{
    /// <summary>Output size along one axis for an input of <paramref name="input"/> pixels and a kernel of <paramref name="kernel"/> taps: (input + 2*Padding - kernel)/Stride + 1.</summary>
    public int OutputSize(int input, int kernel) => (input + 2 * Padding - kernel) / Stride + 1;
}

/// <summary>Everything that fixes the work of one convolution: the key for caches and plans.</summary>
/// <param name="N">Batch size.</param>
/// <param name="C">Input channels.</param>
/// <param name="H">Input height.</param>
/// <param name="W">Input width.</param>
/// <param name="K">Output channels.</param>
/// <param name="R">Kernel height.</param>
/// <param name="S">Kernel width.</param>
/// <param name="Stride">Stride in both axes.</param>
/// <param name="Padding">Zero padding on every side.</param>
public readonly record struct ConvGeometry(int N, int C, int H, int W, int K, int R, int S, int Stride, int Padding)
{
    /// <summary>Output height: (H + 2*Padding - R)/Stride + 1.</summary>
    public int P => (H + 2 * Padding - R) / Stride + 1;
    /// <summary>Output width: (W + 2*Padding - S)/Stride + 1.</summary>
    public int Q => (W + 2 * Padding - S) / Stride + 1;

    /// <summary>Rows of the im2col matrix: input channels times kernel taps.</summary>
    public int Crs => C * R * S;

    /// <summary>A 1x1 convolution with stride 1 and no padding: a plain matrix product per sample.</summary>
    public bool IsPointwise => R == 1 && S == 1 && Stride == 1 && Padding == 0;

    /// <summary>Floating-point operations of the forward pass, 2 per multiply-add: 2*N*K*P*Q*C*R*S.</summary>
    public double Flops => 2.0 * N * K * P * Q * Crs;

    /// <summary>The geometry of input <paramref name="x"/> (N, C, H, W) and weight <paramref name="w"/> (K, C, R, S) with <paramref name="spec"/>.</summary>
    public static ConvGeometry From(TensorShape x, TensorShape w, ConvSpec spec) =>
        new(x.N, x.C, x.H, x.W, w.N, w.H, w.W, spec.Stride, spec.Padding);

    /// <summary>The same convolution for a batch of <paramref name="n"/> samples.</summary>
    public ConvGeometry WithBatch(int n) => this with { N = n };

    /// <inheritdoc/>
    public override string ToString() =>
        $"N{N} C{C} {H}x{W} -> K{K} {P}x{Q}, kernel {R}x{S}, stride {Stride}, pad {Padding}";
}
