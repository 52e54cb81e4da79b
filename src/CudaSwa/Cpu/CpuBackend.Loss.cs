using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    private protected override void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats)
    {
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        float* z = CpuTensor.Ptr(logits);
        int* y = CpuTensor.IntPtr(labels);
        float* dz = dLogits.IsNull ? null : CpuTensor.Ptr(dLogits);
        float* st = CpuTensor.Ptr(stats);
        double lossSum = 0;
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            float* row = z + (long)i * k;
            int label = y[i];
            if ((uint)label >= (uint)k)
                throw new ArgumentOutOfRangeException(nameof(labels), $"Label {label} at row {i} is outside 0..{k - 1}.");
            int arg = 0;
            float max = row[0];
            for (int j = 1; j < k; j++)
                if (row[j] > max) { max = row[j]; arg = j; }
            double sum = 0;
            for (int j = 0; j < k; j++) sum += Math.Exp(row[j] - max);
            double logSum = Math.Log(sum) + max;
            lossSum += logSum - row[label];
            if (arg == label) correct++;
            if (dz != null)
            {
                float* drow = dz + (long)i * k;
                for (int j = 0; j < k; j++)
                {
                    double p = Math.Exp(row[j] - logSum);
                    drow[j] = (float)((p - (j == label ? 1.0 : 0.0)) / n);
                }
            }
        }
        st[0] += (float)lossSum;
        st[1] += correct;
    }

    private protected override void SoftmaxCore(Tensor logits, Tensor probabilities)
    {
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        float* z = CpuTensor.Ptr(logits), pr = CpuTensor.Ptr(probabilities);
        for (int i = 0; i < n; i++)
        {
            float* row = z + (long)i * k, outRow = pr + (long)i * k;
            float max = row[0];
            for (int j = 1; j < k; j++) max = Math.Max(max, row[j]);
            double sum = 0;
            for (int j = 0; j < k; j++) sum += Math.Exp(row[j] - max);
            for (int j = 0; j < k; j++) outRow[j] = (float)(Math.Exp(row[j] - max) / sum);
        }
    }

}
