using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using CudaSwa.Cpu.Simd;
using CudaSwa.Cpu.Workers;
using CudaSwa.Tensors;

namespace CudaSwa.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    private protected override void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        int n = x.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float* ys = CpuTensor.Ptr(y), bs = CpuTensor.Ptr(b);
        Gemm.MultiplyParallel(false, true, n, outF, inF, 1f, CpuTensor.Ptr(x), inF, CpuTensor.Ptr(w), inF, 0f, ys, outF);
        AddRowBias(ys, bs, n, outF);
    }

    /// <inheritdoc/>
    private protected override void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        int n = dy.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        Gemm.MultiplyParallel(false, false, n, inF, outF, 1f, CpuTensor.Ptr(dy), outF, CpuTensor.Ptr(w), inF, accumulate ? 1f : 0f, CpuTensor.Ptr(dx), inF);
    }

    /// <inheritdoc/>
    private protected override void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        int n = x.Shape.N, inF = dw.Shape.C, outF = dw.Shape.N;
        float* dys = CpuTensor.Ptr(dy), dbs = CpuTensor.Ptr(db);
        Gemm.MultiplyParallel(true, false, outF, inF, n, 1f, dys, outF, CpuTensor.Ptr(x), inF, 1f, CpuTensor.Ptr(dw), inF);
        ColumnSumAccumulate(dys, dbs, n, outF);
    }
}
