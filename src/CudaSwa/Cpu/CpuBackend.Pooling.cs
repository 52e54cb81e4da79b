using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    private protected override void GlobalAveragePoolForwardCore(Tensor x, Tensor y)
    {
        int hw = x.Shape.H * x.Shape.W;
        long planes = (long)x.Shape.N * x.Shape.C;
        float* xs = CpuTensor.Ptr(x), ys = CpuTensor.Ptr(y);
        for (long p = 0; p < planes; p++)
            ys[p] = TensorPrimitives.Sum(new ReadOnlySpan<float>(xs + p * hw, hw)) / hw;
    }

    private protected override void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate)
    {
        int hw = dx.Shape.H * dx.Shape.W;
        long planes = (long)dx.Shape.N * dx.Shape.C;
        float* dys = CpuTensor.Ptr(dy), dxs = CpuTensor.Ptr(dx);
        for (long p = 0; p < planes; p++)
        {
            var row = new Span<float>(dxs + p * hw, hw);
            float g = dys[p] / hw;
            if (accumulate) TensorPrimitives.Add(row, g, row);
            else row.Fill(g);
        }
    }

    private protected override void MaxPoolForwardCore(Tensor x, Tensor y)
    {
        int h = x.Shape.H, w = x.Shape.W, ho = h / 2, wo = w / 2;
        long planes = (long)x.Shape.N * x.Shape.C;
        float* xs = CpuTensor.Ptr(x), ys = CpuTensor.Ptr(y);
        for (long p = 0; p < planes; p++)
        {
            float* src = xs + p * h * w;
            float* dst = ys + p * ho * wo;
            for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++)
            {
                float* q = src + 2 * i * w + 2 * j;
                float m = q[0];
                if (q[1] > m) m = q[1];
                if (q[w] > m) m = q[w];
                if (q[w + 1] > m) m = q[w + 1];
                dst[i * wo + j] = m;
            }
        }
    }

    private protected override void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate)
    {
        int h = x.Shape.H, w = x.Shape.W, ho = h / 2, wo = w / 2;
        long planes = (long)x.Shape.N * x.Shape.C;
        float* xs = CpuTensor.Ptr(x), dys = CpuTensor.Ptr(dy), dxs = CpuTensor.Ptr(dx);
        if (!accumulate) new Span<float>(dxs, checked((int)dx.Length)).Clear();
        for (long p = 0; p < planes; p++)
        {
            float* src = xs + p * h * w;
            float* g = dxs + p * h * w;
            float* d = dys + p * ho * wo;
            for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++)
            {
                int at = 2 * i * w + 2 * j;
                int best = at;
                if (src[at + 1] > src[best]) best = at + 1;
                if (src[at + w] > src[best]) best = at + w;
                if (src[at + w + 1] > src[best]) best = at + w + 1;
                g[best] += d[i * wo + j];
            }
        }
    }

}
