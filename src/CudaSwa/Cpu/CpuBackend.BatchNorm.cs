using System.Runtime.Intrinsics;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd) =>
        ForwardTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);

    /// <inheritdoc/>
    private protected override void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon) =>
        ForwardInference(x, y, gamma, beta, runningMean, runningVar, epsilon);

    /// <inheritdoc/>
    private protected override void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx, Tensor dGamma, Tensor dBeta,
        double epsilon, bool accumulate) =>
        Backward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, accumulate);

    /// <inheritdoc/>
    private protected override void BatchNormReluForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd) =>
        ForwardTraining(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd, relu: true);

    /// <inheritdoc/>
    private protected override void BatchNormReluForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon) =>
        ForwardInference(x, y, gamma, beta, runningMean, runningVar, epsilon, relu: true);

    /// <inheritdoc/>
    private protected override void BatchNormReluBackwardCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate) =>
        Backward(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, accumulate, relu: true, y);

    /// <summary>Per-channel mean and M2 of one shard (<see cref="Tensors.Backend.BatchNormMoments"/>).</summary>
    private protected override void BatchNormMomentsCore(Tensor x, Tensor mean, Tensor m2)
    {
        var s = x.Shape;
        int n = s.N, c = s.C, hw = s.H * s.W;
        nint px = (nint)CpuTensor.Ptr(x), pm = (nint)CpuTensor.Ptr(mean), pm2 = (nint)CpuTensor.Ptr(m2);
        CpuParallel.For(c, ch =>
        {
            var (shiftValue, s1, s2) = ShiftedSums((float*)px, n, c, hw, ch);
            double meanShifted = s1 / ((long)n * hw);
            ((float*)pm)[ch] = (float)(shiftValue + meanShifted);
            ((float*)pm2)[ch] = (float)Math.Max(0, s2 - s1 * meanShifted);
        });
    }

    /// <summary>This shard's gradient sums (<see cref="Tensors.Backend.BatchNormBackwardReduce"/>); ys is null without a fused ReLU.</summary>
    private protected override void BatchNormBackwardReduceCore(Tensor x, Tensor y, Tensor dy, Tensor saveMean, Tensor saveInvStd, Tensor sumDy, Tensor sumDyXhat, Tensor dGamma, Tensor dBeta)
    {
        var s = x.Shape;
        int n = s.N, c = s.C, hw = s.H * s.W;
        nint px = (nint)CpuTensor.Ptr(x), py = y.IsNull ? 0 : (nint)CpuTensor.Ptr(y), pdy = (nint)CpuTensor.Ptr(dy);
        nint psm = (nint)CpuTensor.Ptr(saveMean), psi = (nint)CpuTensor.Ptr(saveInvStd);
        nint ps1 = (nint)CpuTensor.Ptr(sumDy), ps2 = (nint)CpuTensor.Ptr(sumDyXhat), pdg = (nint)CpuTensor.Ptr(dGamma), pdb = (nint)CpuTensor.Ptr(dBeta);
        CpuParallel.For(c, ch =>
        {
            var (s1, s2) = GradientSums((float*)px, (float*)py, (float*)pdy, n, c, hw, ch, ((float*)psm)[ch], ((float*)psi)[ch]);
            ((float*)ps1)[ch] = (float)s1;
            ((float*)ps2)[ch] = (float)s2;
            ((float*)pdb)[ch] += (float)s1;
            ((float*)pdg)[ch] += (float)s2;
        });
    }

    /// <summary>dx from the batch's gradient sums (<see cref="Tensors.Backend.BatchNormBackwardElementwise"/>); ys is null without a fused ReLU.</summary>
    private protected override void BatchNormBackwardElementwiseCore(Tensor x, Tensor y, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor sumDy, Tensor sumDyXhat,
        double count, Tensor dx, bool accumulate)
    {
        var s = x.Shape;
        int n = s.N, c = s.C, hw = s.H * s.W;
        nint px = (nint)CpuTensor.Ptr(x), py = y.IsNull ? 0 : (nint)CpuTensor.Ptr(y), pdy = (nint)CpuTensor.Ptr(dy), pdx = (nint)CpuTensor.Ptr(dx);
        nint pg = (nint)CpuTensor.Ptr(gamma), psm = (nint)CpuTensor.Ptr(saveMean), psi = (nint)CpuTensor.Ptr(saveInvStd);
        nint ps1 = (nint)CpuTensor.Ptr(sumDy), ps2 = (nint)CpuTensor.Ptr(sumDyXhat);
        CpuParallel.For(c, ch => InputGradientOfChannel((float*)px, (float*)py, (float*)pdy, (float*)pdx, n, c, hw, ch,
            ((float*)pg)[ch], ((float*)psm)[ch], ((float*)psi)[ch], ((float*)ps1)[ch], ((float*)ps2)[ch], count, accumulate));
    }

    /// <summary>
    /// foldedWeight[k] = weight[k] * scale[k], foldedBias[k] = shift[k] + bias[k] * scale[k] (float
    /// multiply, then add; shift alone without a bias) with <see cref="InferenceScaleShift"/>:
    /// the convolution before an inference-mode BN absorbs it.
    /// </summary>
    private protected override void FoldBatchNormCore(Tensor weight, Tensor bias, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon, Tensor foldedWeight, Tensor foldedBias)
    {
        int k = weight.Shape.N;
        long perFilter = weight.Length / k;
        float* w = CpuTensor.Ptr(weight), fw = CpuTensor.Ptr(foldedWeight), fb = CpuTensor.Ptr(foldedBias);
        float* g = CpuTensor.Ptr(gamma), b = CpuTensor.Ptr(beta), rm = CpuTensor.Ptr(runningMean), rv = CpuTensor.Ptr(runningVar);
        float* cb = bias.IsNull ? null : CpuTensor.Ptr(bias);
        for (int o = 0; o < k; o++)
        {
            var (scale, shift) = InferenceScaleShift(g[o], b[o], rm[o], rv[o], epsilon);
            Elementwise.Map(w + o * perFilter, fw + o * perFilter, perFilter, new Scale(scale));
            fb[o] = cb is null ? shift : shift + cb[o] * scale;
        }
    }

    private protected override void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon, long batchCount, long previousCount,
        Tensor accMean, Tensor accM2)
    {
        float* bm = CpuTensor.Ptr(saveMean), bi = CpuTensor.Ptr(saveInvStd), am = CpuTensor.Ptr(accMean), a2 = CpuTensor.Ptr(accM2);
        double nb = batchCount, na = previousCount, total = na + nb;
        for (int ch = 0; ch < saveMean.Length; ch++)
        {
            double inv = bi[ch];
            double varBiased = Math.Max(0, 1.0 / (inv * inv) - epsilon);
            double m2b = varBiased * nb;
            double mean = am[ch], m2 = a2[ch];
            ChanMerge(na, ref mean, ref m2, nb, bm[ch], m2b);
            am[ch] = (float)mean;
            a2[ch] = (float)m2;
        }
    }

    /// <summary>
    /// The ranks' (count, means, M2s) rows merged with Chan's formula in rank order, in double
    /// (<see cref="Tensors.Backend.BatchNormMergeShards"/>); batchnorm.cu's bn_merge_shards does the same.
    /// </summary>
    private protected override void BatchNormMergeShardsCore(Tensor shards, int ranks, double factor, double epsilon, Tensor runningMean, Tensor runningVar,
        Tensor saveMean, Tensor saveInvStd, Tensor batchVar)
    {
        int c = (int)runningMean.Length, row = 1 + 2 * c;
        float* rows = CpuTensor.Ptr(shards), rm = CpuTensor.Ptr(runningMean), rv = CpuTensor.Ptr(runningVar);
        float* sm = CpuTensor.Ptr(saveMean), si = CpuTensor.Ptr(saveInvStd), bv = CpuTensor.Ptr(batchVar);
        for (int ch = 0; ch < c; ch++)
        {
            double total = 0, mean = 0, m2 = 0;
            for (int r = 0; r < ranks; r++)
            {
                double count = rows[(long)r * row];
                if (count == 0) continue;
                ChanMerge(total, ref mean, ref m2, count, rows[(long)r * row + 1 + ch], rows[(long)r * row + 1 + c + ch]);
                total += count;
            }
            double varBiased = total > 0 ? Math.Max(0, m2 / total) : 0;
            double varUnbiased = total > 1 ? varBiased * total / (total - 1) : varBiased;
            rm[ch] = (float)((1 - factor) * rm[ch] + factor * mean);
            rv[ch] = (float)((1 - factor) * rv[ch] + factor * varUnbiased);
            sm[ch] = (float)mean;
            si[ch] = (float)(1.0 / Math.Sqrt(varBiased + epsilon));
            bv[ch] = (float)varBiased;
        }
    }

    // ---------------------------------------------------------------- batchnorm
    // Spatial batch normalisation on the CPU, channel by channel, with the semantics of cuDNN's legacy API
    // (the CUDA backend calls cuDNN; this is its twin). Sums run in double so the reference is accurate;
    // each channel's values are N runs of H*W contiguous floats.

    // relu: apply max(., 0) to the normalised output in the same pass (BN fused with the ReLU after it).
    internal static void ForwardTraining(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double eps, Tensor saveMean, Tensor saveInvStd, bool relu = false)
    {
        var s = x.Shape;
        int n = s.N, c = s.C, hw = s.H * s.W;
        long m = (long)n * hw;
        nint px = (nint)CpuTensor.Ptr(x), py = (nint)CpuTensor.Ptr(y);
        float* g = CpuTensor.Ptr(gamma), b = CpuTensor.Ptr(beta);
        float* rm = CpuTensor.Ptr(runningMean), rv = CpuTensor.Ptr(runningVar);
        float* sm = CpuTensor.Ptr(saveMean), si = CpuTensor.Ptr(saveInvStd);
        nint pg = (nint)g, pb = (nint)b, prm = (nint)rm, prv = (nint)rv, psm = (nint)sm, psi = (nint)si;
        CpuParallel.For(c, ch =>
        {
            float* xs = (float*)px, ys = (float*)py;
            var (shiftValue, s1, s2) = ShiftedSums(xs, n, c, hw, ch);
            double meanShifted = s1 / m;
            double mean = shiftValue + meanShifted;
            double varBiased = Math.Max(0, s2 / m - meanShifted * meanShifted);
            double invStd = 1.0 / Math.Sqrt(varBiased + eps);
            float scale = (float)(((float*)pg)[ch] * invStd);
            float shift = (float)(((float*)pb)[ch] - mean * ((float*)pg)[ch] * invStd);
            for (int i = 0; i < n; i++)
            {
                long off = ((long)i * c + ch) * hw;
                if (relu) Elementwise.Map(xs + off, ys + off, hw, new ScaleShiftRelu(scale, shift));
                else Elementwise.Map(xs + off, ys + off, hw, new ScaleShift(scale, shift));
            }
            double varUnbiased = m > 1 ? varBiased * m / (m - 1) : varBiased;
            float* rmean = (float*)prm, rvar = (float*)prv;
            rmean[ch] = (float)((1 - factor) * rmean[ch] + factor * mean);
            rvar[ch] = (float)((1 - factor) * rvar[ch] + factor * varUnbiased);
            ((float*)psm)[ch] = (float)mean;
            ((float*)psi)[ch] = (float)invStd;
        });
    }

    /// <summary>
    /// (k, Σ(x-k), Σ(x-k)^2) of channel ch over N planes of hw values in one pass, shifted by k, one
    /// of the channel's own values, so that the variance's subtraction does not cancel catastrophically.
    /// </summary>
    private static (float Shift, double S1, double S2) ShiftedSums(float* xs, int n, int c, int hw, int ch)
    {
        float shiftValue = xs[(long)ch * hw];
        double s1 = 0, s2 = 0;
        for (int i = 0; i < n; i++)
        {
            var (a, b) = Simd.Moments.Sum(xs + ((long)i * c + ch) * hw, hw, new ShiftedMoments(shiftValue));
            s1 += a;
            s2 += b;
        }
        return (shiftValue, s1, s2);
    }

    internal static void ForwardInference(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double eps, bool relu = false)
    {
        var s = x.Shape;
        int n = s.N, c = s.C, hw = s.H * s.W;
        float* xs = CpuTensor.Ptr(x), ys = CpuTensor.Ptr(y);
        float* g = CpuTensor.Ptr(gamma), b = CpuTensor.Ptr(beta), rm = CpuTensor.Ptr(runningMean), rv = CpuTensor.Ptr(runningVar);
        var scale = new float[c];
        var shift = new float[c];
        for (int ch = 0; ch < c; ch++) (scale[ch], shift[ch]) = InferenceScaleShift(g[ch], b[ch], rm[ch], rv[ch], eps);
        nint px = (nint)xs, py = (nint)ys;
        CpuParallel.For(Math.Min(n * c, CpuParallel.Workers * 4), part =>
        {
            int parts = Math.Min(n * c, CpuParallel.Workers * 4);
            long start = (long)n * c * part / parts, end = (long)n * c * (part + 1) / parts;
            for (long plane = start; plane < end; plane++)
            {
                int ch = (int)(plane % c);
                float* from = (float*)px + plane * hw, to = (float*)py + plane * hw;
                if (relu) Elementwise.Map(from, to, hw, new ScaleShiftRelu(scale[ch], shift[ch]));
                else Elementwise.Map(from, to, hw, new ScaleShift(scale[ch], shift[ch]));
            }
        });
    }

    /// <summary>
    /// Inference-mode BN as one multiply and one add per value: scale = gamma/sqrt(var + eps),
    /// shift = beta - mean*scale, each computed in double and rounded once. The CUDA twin
    /// (batchnorm_fold) computes the same.
    /// </summary>
    internal static (float Scale, float Shift) InferenceScaleShift(float gamma, float beta, float mean, float variance, double eps)
    {
        double invStd = 1.0 / Math.Sqrt(variance + eps);
        return ((float)(gamma * invStd), (float)(beta - mean * gamma * invStd));
    }

    // With relu, y is the output of the ReLU after the BN and dy that output's gradient, masked by
    // y > 0 on the fly (BN fused with the ReLU after it).
    internal static void Backward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx,
        Tensor dGamma, Tensor dBeta, bool accumulate, bool relu = false, Tensor y = default)
    {
        nint pyOut = relu ? (nint)CpuTensor.Ptr(y) : 0;
        var s = x.Shape;
        int n = s.N, c = s.C, hw = s.H * s.W;
        long m = (long)n * hw;
        nint px = (nint)CpuTensor.Ptr(x), pdy = (nint)CpuTensor.Ptr(dy), pdx = (nint)CpuTensor.Ptr(dx);
        nint pg = (nint)CpuTensor.Ptr(gamma), psm = (nint)CpuTensor.Ptr(saveMean), psi = (nint)CpuTensor.Ptr(saveInvStd);
        nint pdg = (nint)CpuTensor.Ptr(dGamma), pdb = (nint)CpuTensor.Ptr(dBeta);
        CpuParallel.For(c, ch =>
        {
            float* xs = (float*)px, dys = (float*)pdy, dxs = (float*)pdx, ys = (float*)pyOut;
            double mean = ((float*)psm)[ch], invStd = ((float*)psi)[ch];
            var (dBetaC, dGammaC) = GradientSums(xs, ys, dys, n, c, hw, ch, mean, invStd);
            ((float*)pdb)[ch] += (float)dBetaC;
            ((float*)pdg)[ch] += (float)dGammaC;
            InputGradientOfChannel(xs, ys, dys, dxs, n, c, hw, ch, ((float*)pg)[ch], mean, invStd, dBetaC, dGammaC, m, accumulate);
        });
    }

    /// <summary>
    /// (Σ dy, Σ dy·xhat) of channel ch, xhat = (x - mean)·invStd = invStd·(Σ dy·x - mean·Σ dy); with
    /// a fused ReLU's output ys (not null), dy masked where y &lt;= 0.
    /// </summary>
    private static (double SumDy, double SumDyXhat) GradientSums(float* xs, float* ys, float* dys, int n, int c, int hw, int ch, double mean, double invStd)
    {
        double sumDy = 0, sumDyX = 0;
        for (int i = 0; i < n; i++)
        {
            long off = ((long)i * c + ch) * hw;
            var (a, b) = ys is not null
                ? Simd.Moments.Sum(ys + off, dys + off, xs + off, hw, new MaskedSumAndDot())
                : Simd.Moments.Sum(dys + off, xs + off, hw, new SumAndDot());
            sumDy += a;
            sumDyX += b;
        }
        return (sumDy, invStd * (sumDyX - mean * sumDy));
    }

    /// <summary>
    /// dx = g·invStd·(dy - sumDy/count - xhat·sumDyXhat/count) = k1·dy + k2·x + k3 over channel ch,
    /// the constants computed in double and rounded once (batchnorm.cu's bn_backward_elementwise
    /// does the same).
    /// </summary>
    private static void InputGradientOfChannel(float* xs, float* ys, float* dys, float* dxs, int n, int c, int hw, int ch,
        double g, double mean, double invStd, double sumDy, double sumDyXhat, double count, bool accumulate)
    {
        double k1 = g * invStd;
        double k2 = -g * invStd * invStd * sumDyXhat / count;
        double k3 = -g * invStd * sumDy / count - k2 * mean;
        for (int i = 0; i < n; i++)
        {
            long off = ((long)i * c + ch) * hw;
            if (ys is not null) Elementwise.MapInto(ys + off, dys + off, xs + off, dxs + off, hw, new MaskedInputGradient((float)k1, (float)k2, (float)k3), accumulate);
            else Elementwise.MapInto(dys + off, xs + off, dxs + off, hw, new InputGradient((float)k1, (float)k2, (float)k3), accumulate);
        }
    }

    /// <summary>(sum of (x - k), sum of (x - k)^2): the moments shifted by one of the channel's own values k.</summary>
    internal readonly struct ShiftedMoments(float k) : IUnaryMoments
    {
        public void Accumulate(ref Vector256<float> s, ref Vector256<float> t, Vector256<float> x)
        {
            var d = x - Vector256.Create(k);
            s += d;
            t = Vector256.FusedMultiplyAdd(d, d, t);
        }

        public void Accumulate(ref Vector512<float> s, ref Vector512<float> t, Vector512<float> x)
        {
            var d = x - Vector512.Create(k);
            s += d;
            t = Vector512.FusedMultiplyAdd(d, d, t);
        }

        public void Accumulate(ref double s, ref double t, float x)
        {
            double d = x - k;
            s += d;
            t += d * d;
        }
    }

    /// <summary>(sum of dy, sum of dy * x) in one read of each.</summary>
    internal readonly struct SumAndDot : IBinaryMoments
    {
        public void Accumulate(ref Vector256<float> s, ref Vector256<float> t, Vector256<float> dy, Vector256<float> x)
        {
            s += dy;
            t = Vector256.FusedMultiplyAdd(dy, x, t);
        }

        public void Accumulate(ref Vector512<float> s, ref Vector512<float> t, Vector512<float> dy, Vector512<float> x)
        {
            s += dy;
            t = Vector512.FusedMultiplyAdd(dy, x, t);
        }

        public void Accumulate(ref double s, ref double t, float dy, float x)
        {
            s += dy;
            t += (double)dy * x;
        }
    }

    /// <summary>(sum of g, sum of g * x) with g = dy where the ReLU output y &gt; 0, else 0: <see cref="SumAndDot"/> of the ReLU's gradient.</summary>
    internal readonly struct MaskedSumAndDot : ITernaryMoments
    {
        public void Accumulate(ref Vector256<float> s, ref Vector256<float> t, Vector256<float> y, Vector256<float> dy, Vector256<float> x)
        {
            var g = new ReluGradient().Invoke(y, dy);
            s += g;
            t = Vector256.FusedMultiplyAdd(g, x, t);
        }

        public void Accumulate(ref Vector512<float> s, ref Vector512<float> t, Vector512<float> y, Vector512<float> dy, Vector512<float> x)
        {
            var g = new ReluGradient().Invoke(y, dy);
            s += g;
            t = Vector512.FusedMultiplyAdd(g, x, t);
        }

        public void Accumulate(ref double s, ref double t, float y, float dy, float x)
        {
            float g = new ReluGradient().Invoke(y, dy);
            s += g;
            t += (double)g * x;
        }
    }

    /// <summary><see cref="InputGradient"/> of the ReLU's gradient: k1*g + k2*x + k3 with g = dy where y &gt; 0, else 0.</summary>
    internal readonly struct MaskedInputGradient(float k1, float k2, float k3) : ITernaryOperator
    {
        private readonly InputGradient _inner = new(k1, k2, k3);
        public float Invoke(float y, float dy, float x) => _inner.Invoke(new ReluGradient().Invoke(y, dy), x);
        public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy, Vector256<float> x) => _inner.Invoke(new ReluGradient().Invoke(y, dy), x);
        public Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy, Vector512<float> x) => _inner.Invoke(new ReluGradient().Invoke(y, dy), x);
    }

    /// <summary>dx = k1*dy + k2*x + k3: BN's input gradient with the per-channel constants folded.</summary>
    internal readonly struct InputGradient(float k1, float k2, float k3) : IBinaryOperator
    {
        public float Invoke(float dy, float x) => k1 * dy + k2 * x + k3;
        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x) => Vector256.Create(k1) * dy + Vector256.Create(k2) * x + Vector256.Create(k3);
        public Vector512<float> Invoke(Vector512<float> dy, Vector512<float> x) => Vector512.Create(k1) * dy + Vector512.Create(k2) * x + Vector512.Create(k3);
    }

    /// <summary>
    /// Chan's parallel formula: (mean, m2) of <paramref name="count"/> values merged with
    /// (<paramref name="countB"/>, <paramref name="meanB"/>, <paramref name="m2B"/>), in double, in
    /// the order batchnorm.cu's bn_merge_statistics and bn_merge_shards pin; with count 0 the
    /// result is B's.
    /// </summary>
    private static void ChanMerge(double count, ref double mean, ref double m2, double countB, double meanB, double m2B)
    {
        if (count == 0)
        {
            (mean, m2) = (meanB, m2B);
            return;
        }
        double total = count + countB, delta = meanB - mean;
        mean += delta * countB / total;
        m2 = m2 + m2B + delta * delta * count * countB / total;
    }
}
