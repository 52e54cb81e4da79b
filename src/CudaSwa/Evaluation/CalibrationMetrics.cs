namespace CudaSwa.Evaluation;

/// <summary>
/// How good and how honest a model's predicted probabilities are on a labelled set: top-1
/// accuracy, negative log-likelihood, expected calibration error (ECE; Guo et al. 2017: equal-width
/// confidence bins, the weighted mean of |accuracy − confidence| over bins) and the Brier score
/// (mean over samples of Σₖ (pₖ − [k = y])²), with the bins of the reliability diagram.
/// </summary>
/// <param name="Accuracy">Top-1 accuracy, a fraction (ties go to the lowest class).</param>
/// <param name="Nll">Mean −log p(true class), with p clamped up to 1e-12.</param>
/// <param name="Ece">Expected calibration error, a fraction in [0, 1].</param>
/// <param name="Brier">Brier score, in [0, 2].</param>
/// <param name="Bins">Every confidence bin, lowest first (empty bins included, with Count 0).</param>
public sealed record CalibrationMetrics(double Accuracy, double Nll, double Ece, double Brier, IReadOnlyList<ReliabilityBin> Bins)
{
    /// <summary>Confidence bins of the ECE by default: 15, as in Guo et al. and the SWAG paper.</summary>
    public const int DefaultBins = 15;

    /// <summary>
    /// The metrics of <paramref name="probabilities"/> (one row of <paramref name="classes"/> values
    /// per sample, rows in the order of <paramref name="labels"/>). A sample's confidence is its
    /// largest probability; it falls in bin b when b/B &lt; confidence ≤ (b+1)/B (confidence 0 in bin 0).
    /// </summary>
    public static CalibrationMetrics Compute(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes, int bins = DefaultBins)
    {
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), $"Classes must be >= 1; got {classes}.");
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), $"Bins must be >= 1; got {bins}.");
        if (labels.Length == 0) throw new ArgumentException("No samples to score.", nameof(labels));
        if (probabilities.Length != (long)labels.Length * classes)
            throw new ArgumentException($"{labels.Length} samples of {classes} classes need {(long)labels.Length * classes} probabilities; got {probabilities.Length}.", nameof(probabilities));
        var count = new int[bins];
        var confidenceSum = new double[bins];
        var correctSum = new int[bins];
        double nll = 0, brier = 0;
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            var p = probabilities.Slice(i * classes, classes);
            int y = labels[i];
            if ((uint)y >= (uint)classes) throw new ArgumentException($"Label {y} of sample {i} is outside 0..{classes - 1}.", nameof(labels));
            int arg = 0;
            for (int k = 1; k < classes; k++) if (p[k] > p[arg]) arg = k;
            double confidence = p[arg];
            bool hit = arg == y;
            if (hit) correct++;
            nll -= Math.Log(Math.Max(p[y], 1e-12));
            for (int k = 0; k < classes; k++)
            {
                double d = p[k] - (k == y ? 1.0 : 0.0);
                brier += d * d;
            }
            int b = Math.Clamp((int)Math.Ceiling(confidence * bins) - 1, 0, bins - 1);
            count[b]++;
            confidenceSum[b] += confidence;
            if (hit) correctSum[b]++;
        }
        int n = labels.Length;
        double ece = 0;
        var result = new ReliabilityBin[bins];
        for (int b = 0; b < bins; b++)
        {
            double meanConfidence = count[b] == 0 ? 0 : confidenceSum[b] / count[b];
            double accuracy = count[b] == 0 ? 0 : (double)correctSum[b] / count[b];
            ece += (double)count[b] / n * Math.Abs(accuracy - meanConfidence);
            result[b] = new ReliabilityBin((double)b / bins, (double)(b + 1) / bins, count[b], meanConfidence, accuracy);
        }
        return new CalibrationMetrics((double)correct / n, nll / n, ece, brier / n, result);
    }
}

/// <summary>One confidence bin of a reliability diagram.</summary>
/// <param name="Lower">Lower edge (exclusive, except 0).</param>
/// <param name="Upper">Upper edge (inclusive).</param>
/// <param name="Count">Samples whose confidence falls in the bin.</param>
/// <param name="MeanConfidence">Their mean confidence (0 when empty).</param>
/// <param name="Accuracy">Their accuracy, a fraction (0 when empty).</param>
public readonly record struct ReliabilityBin(double Lower, double Upper, int Count, double MeanConfidence, double Accuracy);
