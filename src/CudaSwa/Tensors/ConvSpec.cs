namespace CudaSwa.Tensors;

/// <summary>Stride and zero padding of a 2-D convolution (square kernels, same in both axes).</summary>
public readonly record struct ConvSpec(int Stride, int Padding)
{
    public int OutputSize(int input, int kernel) => (input + 2 * Padding - kernel) / Stride + 1;
}

/// <summary>Everything that fixes the work of one convolution: the key for caches and plans.</summary>
public readonly record struct ConvGeometry(int N, int C, int H, int W, int K, int R, int S, int Stride, int Padding)
{
    public int P => (H + 2 * Padding - R) / Stride + 1;
    public int Q => (W + 2 * Padding - S) / Stride + 1;

    /// <summary>Rows of the im2col matrix: input channels times kernel taps.</summary>
    public int Crs => C * R * S;

    public bool IsPointwise => R == 1 && S == 1 && Stride == 1 && Padding == 0;

    public double Flops => 2.0 * N * K * P * Q * Crs;

    public static ConvGeometry From(TensorShape x, TensorShape w, ConvSpec spec) =>
        new(x.N, x.C, x.H, x.W, w.N, w.H, w.W, spec.Stride, spec.Padding);

    public ConvGeometry WithBatch(int n) => this with { N = n };

    public override string ToString() =>
        $"N{N} C{C} {H}x{W} -> K{K} {P}x{Q}, kernel {R}x{S}, stride {Stride}, pad {Padding}";
}
