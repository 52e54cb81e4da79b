using NUnit.Framework;

namespace CudaSwa.Tests.Support;

/// <summary>Elementwise comparison |a - b| &lt;= atol + rtol * |ref| that reports the worst element.</summary>
public static class Close
{
    public static void Check(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double atol, double rtol, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        int worst = -1;
        double worstExcess = 0;
        int bad = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], e = expected[i];
            if (double.IsNaN(e) && double.IsNaN(a)) continue; // an expected NaN (an untouched poison) must stay NaN
            double err = Math.Abs(a - e);
            double allowed = atol + rtol * Math.Abs(e);
            if (!(err <= allowed))
            {
                bad++;
                double excess = double.IsNaN(err) ? double.PositiveInfinity : err - allowed;
                if (worst < 0 || excess > worstExcess) { worst = i; worstExcess = excess; }
            }
        }
        if (bad > 0)
            Assert.Fail($"{what}: {bad} of {actual.Length} elements outside atol {atol:g3} + rtol {rtol:g3}; worst at {worst}: got {actual[worst]:g9}, expected {expected[worst]:g9}.");
    }

    public static void Check(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        var e = new double[expected.Length];
        for (int i = 0; i < e.Length; i++) e[i] = expected[i];
        Check(actual, e, atol, rtol, what);
    }

    /// <summary>
    /// Each entry of an arena layout (a parameter tensor) within a relative L2 error:
    /// ||actual - expected||₂ &lt;= rtol * ||expected||₂ + atol * sqrt(n). For whole-network gradients,
    /// where a ReLU whose input lies within rounding of zero can decide differently in two correct
    /// float32 implementations and move every gradient upstream of it by a little; a wrong
    /// transpose, sign, beta or formula moves a tensor by O(1) and still fails.
    /// </summary>
    public static void PerTensor(CudaSwa.Tensors.ArenaLayout layout, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double rtol, double atol, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        var bad = new List<string>();
        foreach (var e in layout.Entries)
        {
            double d2 = 0, n2 = 0;
            for (long i = e.Offset; i < e.Offset + e.Length; i++)
            {
                double d = (double)actual[(int)i] - expected[(int)i];
                d2 += d * d;
                n2 += (double)expected[(int)i] * expected[(int)i];
            }
            double error = Math.Sqrt(d2), allowed = rtol * Math.Sqrt(n2) + atol * Math.Sqrt(e.Length);
            if (!(error <= allowed)) bad.Add($"{e.Name} (relative L2 error {error / Math.Max(Math.Sqrt(n2), double.Epsilon):g3})");
        }
        if (bad.Count > 0) Assert.Fail($"{what}: {bad.Count} of {layout.Entries.Count} tensors outside relative L2 {rtol:g3}: {string.Join(", ", bad.Take(8))}");
    }

    public static double[] ToDouble(ReadOnlySpan<float> a)
    {
        var d = new double[a.Length];
        for (int i = 0; i < d.Length; i++) d[i] = a[i];
        return d;
    }

    public static float[] Poison(int n) => Enumerable.Repeat(float.NaN, n).ToArray();
}
