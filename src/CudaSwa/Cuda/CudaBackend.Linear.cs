using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

public sealed unsafe partial class CudaBackend
{
    // ---------------------------------------------------------------- linear (cuBLAS, column-major views of row-major data)

    private IntPtr Cublas(string op) => HasVendorLibraries ? _cublas : throw NoVendor(op, "cuBLAS");

    /// <inheritdoc/>
    private protected override void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        Ctx();
        var cublas = Cublas("LinearForward");
        int n = x.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float alpha = 1, beta = 0;
        // Y^T (out x n) = W (out x in) * X^T (in x n); row-major W is column-major W^T, hence op T.
        _blas!.Check(_blas.cublasSgemm(cublas, CublasApi.OpT, CublasApi.OpN, outF, n, inF, &alpha, P(w).Address, inF, P(x).Address, inF, &beta, P(y).Address, outF));
        AfterVendorCall("cublasSgemm");
        Launch(Kernels.AddRowBias, Grid((long)n * outF), new(P(y), P(b), n, outF));
    }

    /// <inheritdoc/>
    private protected override void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        Ctx();
        var cublas = Cublas("LinearBackwardData");
        int n = dy.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float alpha = 1, beta = accumulate ? 1 : 0;
        // dX^T (in x n) = W^T (in x out) * dY^T (out x n).
        _blas!.Check(_blas.cublasSgemm(cublas, CublasApi.OpN, CublasApi.OpN, inF, n, outF, &alpha, P(w).Address, inF, P(dy).Address, outF, &beta, P(dx).Address, inF));
        AfterVendorCall("cublasSgemm");
    }

    /// <inheritdoc/>
    private protected override void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        Ctx();
        var cublas = Cublas("LinearBackwardWeights");
        int n = x.Shape.N, inF = dw.Shape.C, outF = dw.Shape.N;
        float alpha = 1, beta = 1;
        // dW^T (in x out) += X^T (in x n) * dY (n x out).
        _blas!.Check(_blas.cublasSgemm(cublas, CublasApi.OpN, CublasApi.OpT, inF, outF, n, &alpha, P(x).Address, inF, P(dy).Address, outF, &beta, P(dw).Address, inF));
        AfterVendorCall("cublasSgemm");
        Launch(Kernels.ColumnSumAccumulate, GridExact(outF), new(P(dy), P(db), n, outF));
    }

    // ---------------------------------------------------------------- the kernels launched above

    /// <summary>Kernels of pointwise.cu that this file launches; their CPU twins are in Cpu/CpuBackend.Linear.cs.</summary>
    internal static partial class Kernels
    {
        public static readonly KernelSpec<AddRowBiasArgs> AddRowBias = new("pointwise.cu", "add_row_bias");
        public static readonly KernelSpec<ColumnSumAccumulateArgs> ColumnSumAccumulate = new("pointwise.cu", "column_sum_accumulate");
    }
}

internal readonly record struct AddRowBiasArgs(DevicePtr y, DevicePtr b, long rows, int cols);
internal readonly record struct ColumnSumAccumulateArgs(DevicePtr dy, DevicePtr db, int rows, int cols);
