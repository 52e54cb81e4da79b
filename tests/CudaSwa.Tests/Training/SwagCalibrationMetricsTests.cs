using CudaSwa.Evaluation;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Training;

/// <summary>The calibration metrics of every final row (SWAG's included): accuracy, NLL, ECE and Brier score on hand-made predictions, worked out by hand in the comments.</summary>
[Category("Cpu")]
public class SwagCalibrationMetricsTests
{
    [Test]
    public void CalibrationOfFourHandMadePredictionsMatchesTheHandComputation()
    {
        // Three classes, four samples (confidence, bin of 15 equal-width bins (b/15, (b+1)/15]; no
        // confidence near an edge, where float32 rounding decides the bin):
        //   [0.7, 0.2, 0.1]    y=0: right, conf 0.7  -> bin 10 (0.6667, 0.7333]
        //   [0.1, 0.78, 0.12]  y=2: wrong, conf 0.78 -> bin 11 (0.7333, 0.8]
        //   [0.3, 0.32, 0.38]  y=2: right, conf 0.38 -> bin 5  (0.3333, 0.4]
        //   [0.2, 0.75, 0.05]  y=1: right, conf 0.75 -> bin 11
        float[] p = [0.7f, 0.2f, 0.1f, 0.1f, 0.78f, 0.12f, 0.3f, 0.32f, 0.38f, 0.2f, 0.75f, 0.05f];
        int[] y = [0, 2, 2, 1];
        var m = CalibrationMetrics.Compute(p, y, classes: 3);
        Assert.That(m.Accuracy, Is.EqualTo(0.75));
        double nll = -(Math.Log(0.7f) + Math.Log(0.12f) + Math.Log(0.38f) + Math.Log(0.75f)) / 4;
        Assert.That(m.Nll, Is.EqualTo(nll).Within(1e-12));
        // Brier: (0.09+0.04+0.01) + (0.01+0.6084+0.7744) + (0.09+0.1024+0.3844) + (0.04+0.0625+0.0025) = 0.14+1.3928+0.5768+0.105 = 2.2146; /4
        Assert.That(m.Brier, Is.EqualTo(2.2146 / 4).Within(1e-6));
        // ECE: bin 10: |1 - 0.7| * 1/4; bin 11: |0.5 - 0.765| * 2/4; bin 5: |1 - 0.38| * 1/4 = 0.075 + 0.1325 + 0.155
        Assert.That(m.Ece, Is.EqualTo(0.3625).Within(1e-6));
        Assert.That(m.Bins, Has.Count.EqualTo(15));
        Assert.That(m.Bins[11].Count, Is.EqualTo(2));
        Assert.That(m.Bins[11].Accuracy, Is.EqualTo(0.5));
        Assert.That(m.Bins[11].MeanConfidence, Is.EqualTo(0.765).Within(1e-6));
        Assert.That(m.Bins.Sum(b => b.Count), Is.EqualTo(4));
        Assert.That(m.Bins[0].Lower, Is.EqualTo(0.0));
        Assert.That(m.Bins[14].Upper, Is.EqualTo(1.0));
    }

    [Test]
    public void CalibrationOfPerfectlyCalibratedConfidenceHasZeroEce()
    {
        // Ten samples, each with confidence 0.8 (bin 11), eight of them right: accuracy equals confidence.
        var p = new List<float>();
        var y = new List<int>();
        for (int i = 0; i < 10; i++)
        {
            p.AddRange([0.8f, 0.2f]);
            y.Add(i < 8 ? 0 : 1);
        }
        var m = CalibrationMetrics.Compute(p.ToArray(), y.ToArray(), classes: 2);
        Assert.That(m.Ece, Is.EqualTo(0).Within(1e-6));
        Assert.That(m.Accuracy, Is.EqualTo(0.8));
        // Brier: right: 2 * 0.04 = 0.08; wrong: 0.64 + 0.64 = 1.28; mean = (8*0.08 + 2*1.28)/10 = 0.32
        Assert.That(m.Brier, Is.EqualTo(0.32).Within(1e-6));
    }

    [Test]
    public void CalibrationRefusesMismatchedShapesAndLabels()
    {
        Assert.Throws<ArgumentException>(() => CalibrationMetrics.Compute(new float[5], [0, 1], 3));
        Assert.That(Assert.Throws<ArgumentException>(() => CalibrationMetrics.Compute(new float[6], [0, 3], 3))!.Message, Does.Contain("Label 3"));
        Assert.Throws<ArgumentException>(() => CalibrationMetrics.Compute([], [], 3));
    }
}
