using System.Diagnostics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void PrepareConvolutionCore(ConvGeometry geometry) => _convolution.Prepare(geometry);
    /// <inheritdoc/>
    private protected override void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g) =>
        Detail(g, ConvPass.Forward, () => _convolution.Forward(x, w, y, g));
    /// <inheritdoc/>
    private protected override void ConvolutionBiasActivationForwardCore(Tensor x, Tensor w, Tensor bias, bool relu, Tensor y, ConvGeometry g)
    {
        long start = Stopwatch.GetTimestamp();
        if (!_convolution.TryForwardWithBias(x, w, bias, relu, y, g))
        {
            base.ConvolutionBiasActivationForwardCore(x, w, bias, relu, y, g);
            return;
        }
        Profiler?.AddDetail(DetailName(g, ConvPass.Forward, _convolution.Choice.Decisions[(g, ConvPass.Forward)].Algorithm) + " +bias", Stopwatch.GetElapsedTime(start).TotalSeconds);
    }
    /// <inheritdoc/>
    private protected override void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate) =>
        Detail(g, ConvPass.BackwardData, () => _convolution.BackwardData(dy, w, dx, g, accumulate));
    /// <inheritdoc/>
    private protected override void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g) =>
        Detail(g, ConvPass.BackwardFilter, () => _convolution.BackwardFilter(x, dy, dw, g));

    /// <inheritdoc/>
    internal override IReadOnlyList<string> ConvolutionAlgorithms(ConvGeometry g) => [.. ConvolutionChoice.Candidates(g).Select(ConvolutionChoice.Name)];

    /// <inheritdoc/>
    internal override void ConvolutionPassWith(string algorithm, ConvPass pass, Tensor x, Tensor w, Tensor y, Tensor dx, Tensor dw, ConvGeometry g) =>
        RunPass(Enum.Parse<ConvAlgorithm>(algorithm, ignoreCase: true), pass, x, w, y, dx, dw, g);

    /// <inheritdoc/>
    internal override string ConvolutionAlgorithmFor(ConvPass pass, Tensor x, Tensor w, Tensor y, Tensor dx, Tensor dw, ConvGeometry g)
    {
        var output = pass switch { ConvPass.Forward => y, ConvPass.BackwardData => dx, _ => dw };
        return ConvolutionChoice.Name(_convolution.Choice.For(g, pass, output, a => RunPass(a, pass, x, w, y, dx, dw, g)));
    }

    /// <inheritdoc/>
    internal override (double Gflops, string How) MeasureArithmeticPeak()
    {
        var (gflops, width) = Simd.FmaPeak.Measure();
        return (gflops, $"{width} FMA chains on {CpuParallel.Workers} workers");
    }

    private void RunPass(ConvAlgorithm a, ConvPass pass, Tensor x, Tensor w, Tensor y, Tensor dx, Tensor dw, ConvGeometry g)
    {
        switch (pass)
        {
            case ConvPass.Forward: _convolution.RunForward(a, x, w, y, g); break;
            case ConvPass.BackwardData: _convolution.RunBackwardData(a, y, w, dx, g, false); break;
            default: _convolution.RunBackwardFilter(a, x, y, dw, g); break;
        }
    }

    /// <summary>Runs one convolution pass; under a profiler, its time goes to a line naming the shape, pass and algorithm that ran.</summary>
    private void Detail(ConvGeometry g, ConvPass pass, Func<ConvAlgorithm> run)
    {
        long start = Stopwatch.GetTimestamp();
        var algorithm = run();
        Profiler?.AddDetail(DetailName(g, pass, algorithm), Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    private static string DetailName(ConvGeometry g, ConvPass pass, ConvAlgorithm algorithm) =>
        $"{ConvolutionChoice.Describe(g)} {pass}: {ConvolutionChoice.Name(algorithm)}";

    private protected override void AddChannelBiasCore(Tensor y, Tensor bias)
    {
        int c = y.Shape.C, hw = y.Shape.H * y.Shape.W, n = y.Shape.N;
        float* ys = CpuTensor.Ptr(y), b = CpuTensor.Ptr(bias);
        for (long plane = 0; plane < (long)n * c; plane++)
        {
            var row = new Span<float>(ys + plane * hw, hw);
            TensorPrimitives.Add(row, b[plane % c], row);
        }
    }

    /// <summary>y = max(y + bias[c], 0) in place, plane by plane: a folded convolution's bias and its ReLU.</summary>
    private protected override void AddChannelBiasReluCore(Tensor y, Tensor bias)
    {
        int c = y.Shape.C, hw = y.Shape.H * y.Shape.W;
        long planes = (long)y.Shape.N * c;
        nint py = (nint)CpuTensor.Ptr(y), pb = (nint)CpuTensor.Ptr(bias);
        CpuParallel.ForRange(planes, Math.Max(1, Elementwise.MinChunk / Math.Max(hw, 1)), (s, e) =>
        {
            for (long plane = s; plane < e; plane++)
            {
                float* row = (float*)py + plane * hw;
                Elementwise.Map(row, row, hw, new ScaleShiftRelu(1f, ((float*)pb)[plane % c]));
            }
        });
    }

    private protected override void ChannelBiasBackwardCore(Tensor dy, Tensor dBias)
    {
        int c = dy.Shape.C, hw = dy.Shape.H * dy.Shape.W, n = dy.Shape.N;
        float* dys = CpuTensor.Ptr(dy), db = CpuTensor.Ptr(dBias);
        for (int ch = 0; ch < c; ch++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += TensorPrimitives.Sum(new ReadOnlySpan<float>(dys + ((long)i * c + ch) * hw, hw));
            db[ch] += (float)sum;
        }
    }
}
