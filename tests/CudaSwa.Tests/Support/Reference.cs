namespace CudaSwa.Tests.Support;

/// <summary>
/// Naive float64 reference implementations, written independently of the engine (direct loops,
/// no im2col, no GEMM), used for forward checks and as the function finite differences probe.
/// </summary>
public static class Reference
{
    public static double[] Conv(double[] x, int n, int c, int h, int w, double[] wt, int k, int r, int stride, int pad, double[]? bias = null)
    {
        var y = new double[n * k * OutSize(h, r, stride, pad) * OutSize(w, r, stride, pad)];
        int perImage = y.Length / n / k;
        if (bias is not null)
            for (int i = 0; i < y.Length; i++) y[i] = bias[i / perImage % k];
        ForEachTap(n, c, h, w, k, r, stride, pad, (yi, xi, wi) => y[yi] += x[xi] * wt[wi]);
        return y;
    }

    /// <summary>dx of a convolution by direct scatter of dy through the kernel (the adjoint of <see cref="Conv"/>).</summary>
    public static double[] ConvBackwardData(double[] dy, int n, int c, int h, int w, double[] wt, int k, int r, int stride, int pad)
    {
        var dx = new double[n * c * h * w];
        ForEachTap(n, c, h, w, k, r, stride, pad, (yi, xi, wi) => dx[xi] += dy[yi] * wt[wi]);
        return dx;
    }

    /// <summary>dW of a convolution: correlation of x with dy, summed over the batch.</summary>
    public static double[] ConvBackwardFilter(double[] x, int n, int c, int h, int w, double[] dy, int k, int r, int stride, int pad)
    {
        var dw = new double[k * c * r * r];
        ForEachTap(n, c, h, w, k, r, stride, pad, (yi, xi, wi) => dw[wi] += dy[yi] * x[xi]);
        return dw;
    }

    private static int OutSize(int size, int r, int stride, int pad) => (size + 2 * pad - r) / stride + 1;

    /// <summary>
    /// Every (output, input, weight) index triple of an NCHW convolution with an r x r kernel whose
    /// tap reads inside the input (padding reads zeros, so it contributes nothing), in the order
    /// output element, then channel, kernel row, kernel column.
    /// </summary>
    private static void ForEachTap(int n, int c, int h, int w, int k, int r, int stride, int pad, Action<int, int, int> tap)
    {
        int p = OutSize(h, r, stride, pad), q = OutSize(w, r, stride, pad);
        for (int i = 0; i < n; i++)
        for (int o = 0; o < k; o++)
        for (int a = 0; a < p; a++)
        for (int b = 0; b < q; b++)
        for (int ch = 0; ch < c; ch++)
        for (int u = 0; u < r; u++)
        for (int v = 0; v < r; v++)
        {
            int ih = a * stride - pad + u, iw = b * stride - pad + v;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            tap(((i * k + o) * p + a) * q + b, ((i * c + ch) * h + ih) * w + iw, ((o * c + ch) * r + u) * r + v);
        }
    }

    /// <summary>Training-mode BN output (biased batch variance), plus batch mean and biased variance per channel.</summary>
    public static (double[] Y, double[] Mean, double[] Var) BatchNormTrain(double[] x, int n, int c, int hw, double[] gamma, double[] beta, double eps)
    {
        var y = new double[x.Length];
        var mean = new double[c];
        var var = new double[c];
        int m = n * hw;
        for (int ch = 0; ch < c; ch++)
        {
            double s = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) s += x[(i * c + ch) * hw + j];
            mean[ch] = s / m;
            double v = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++) { double d = x[(i * c + ch) * hw + j] - mean[ch]; v += d * d; }
            var[ch] = v / m;
            double inv = 1 / Math.Sqrt(var[ch] + eps);
            for (int i = 0; i < n; i++) for (int j = 0; j < hw; j++)
            {
                int at = (i * c + ch) * hw + j;
                y[at] = gamma[ch] * (x[at] - mean[ch]) * inv + beta[ch];
            }
        }
        return (y, mean, var);
    }

    public static double[] Relu(double[] x) => x.Select(v => Math.Max(v, 0)).ToArray();

    public static double[] GlobalAvgPool(double[] x, int planes, int hw)
    {
        var y = new double[planes];
        for (int p = 0; p < planes; p++) { double s = 0; for (int j = 0; j < hw; j++) s += x[p * hw + j]; y[p] = s / hw; }
        return y;
    }

    public static double[] MaxPool2(double[] x, int planes, int h, int w)
    {
        int ho = h / 2, wo = w / 2;
        var y = new double[planes * ho * wo];
        for (int p = 0; p < planes; p++)
        for (int i = 0; i < ho; i++)
        for (int j = 0; j < wo; j++)
        {
            double m = double.NegativeInfinity;
            for (int u = 0; u < 2; u++) for (int v = 0; v < 2; v++) m = Math.Max(m, x[(p * h + 2 * i + u) * w + 2 * j + v]);
            y[(p * ho + i) * wo + j] = m;
        }
        return y;
    }

    public static double[] Linear(double[] x, int n, int inF, double[] w, double[] b, int outF)
    {
        var y = new double[n * outF];
        for (int i = 0; i < n; i++)
        for (int o = 0; o < outF; o++)
        {
            double s = b[o];
            for (int j = 0; j < inF; j++) s += x[i * inF + j] * w[o * inF + j];
            y[i * outF + o] = s;
        }
        return y;
    }

    /// <summary>Mean softmax cross-entropy over the rows.</summary>
    public static double SoftmaxCrossEntropy(double[] z, int[] labels, int n, int k)
    {
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < k; j++) max = Math.Max(max, z[i * k + j]);
            double s = 0;
            for (int j = 0; j < k; j++) s += Math.Exp(z[i * k + j] - max);
            total += Math.Log(s) + max - z[i * k + labels[i]];
        }
        return total / n;
    }

    public static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>Central finite differences of a scalar function, all coordinates.</summary>
    public static double[] NumericGradient(Func<double[], double> f, double[] x, double h = 1e-5)
    {
        var g = new double[x.Length];
        var xp = (double[])x.Clone();
        for (int i = 0; i < x.Length; i++)
        {
            double keep = xp[i];
            xp[i] = keep + h;
            double up = f(xp);
            xp[i] = keep - h;
            double down = f(xp);
            xp[i] = keep;
            g[i] = (up - down) / (2 * h);
        }
        return g;
    }
}
