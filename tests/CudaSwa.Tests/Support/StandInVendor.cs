using CudaSwa.Cuda;
using CudaSwa.Native;
using CudaSwa.Tensors;
using NUnit.Framework;

namespace CudaSwa.Tests.Support;

/// <summary>
/// The stand-in cuDNN and cuBLAS called directly, through the engine's own binding tables
/// (CudnnApi, CublasApi: so their signatures are exercised too), on device memory of a stand-in
/// backend: what the stand-ins' own tests use to hold each call against a closed form.
/// </summary>
public sealed unsafe class StandInVendor : IDisposable
{
    private readonly List<Tensor> _tensors = [];

    public StandInVendor()
    {
        Backend = StandIn.CreateBackend();
        Dnn = CudnnApi.From(Backend.Toolkit.Cudnn!.Handle, Backend.Toolkit.Cudnn.Path);
        Blas = CublasApi.From(Backend.Toolkit.Cublas!.Handle, Backend.Toolkit.Cublas.Path);
        IntPtr h;
        Dnn.Check(Dnn.cudnnCreate(&h));
        Dnn.Check(Dnn.cudnnSetStream(h, IntPtr.Zero));
        Cudnn = h;
        Blas.Check(Blas.cublasCreate(&h));
        Blas.Check(Blas.cublasSetStream(h, IntPtr.Zero));
        Cublas = h;
    }

    internal CudaBackend Backend { get; }
    internal CudnnApi Dnn { get; }
    internal CublasApi Blas { get; }

    /// <summary>A cuDNN handle with its stream set.</summary>
    public IntPtr Cudnn { get; }

    /// <summary>A cuBLAS handle with its stream set.</summary>
    public IntPtr Cublas { get; }

    /// <summary>Device memory holding <paramref name="values"/>; its address.</summary>
    public ulong Put(float[] values)
    {
        var t = Backend.AllocateTensor(new TensorShape(Math.Max(1, values.Length)));
        if (values.Length > 0) Backend.Upload<float>(values, t);
        _tensors.Add(t);
        return ((CudaBuffer)t.Buffer).Pointer;
    }

    /// <summary>Device memory of <paramref name="n"/> NaNs (an output that must be written, never read).</summary>
    public ulong Poisoned(int n) => Put(Close.Poison(n));

    public float[] Get(ulong pointer, int n)
    {
        var t = _tensors.Single(t => ((CudaBuffer)t.Buffer).Pointer == pointer);
        return Backend.ToArray(t)[..n];
    }

    public IntPtr Tensor4d(int n, int c, int h, int w)
    {
        IntPtr d;
        Dnn.Check(Dnn.cudnnCreateTensorDescriptor(&d));
        Dnn.Check(Dnn.cudnnSetTensor4dDescriptor(d, CudnnApi.TensorNchw, CudnnApi.DataFloat, n, c, h, w));
        return d;
    }

    public IntPtr Filter4d(int k, int c, int r, int s)
    {
        IntPtr d;
        Dnn.Check(Dnn.cudnnCreateFilterDescriptor(&d));
        Dnn.Check(Dnn.cudnnSetFilter4dDescriptor(d, CudnnApi.DataFloat, CudnnApi.TensorNchw, k, c, r, s));
        return d;
    }

    public IntPtr Convolution(int pad, int stride, int dilation = 1, int mode = CudnnApi.CrossCorrelation, int math = CudnnApi.FmaMath)
    {
        IntPtr d;
        Dnn.Check(Dnn.cudnnCreateConvolutionDescriptor(&d));
        Dnn.Check(Dnn.cudnnSetConvolution2dDescriptor(d, pad, pad, stride, stride, dilation, dilation, mode, CudnnApi.DataFloat));
        Dnn.Check(Dnn.cudnnSetConvolutionMathType(d, math));
        return d;
    }

    /// <summary>The stand-in's message for the last refusal on this thread (cudnnGetLastErrorString).</summary>
    public string LastCudnnError()
    {
        var buffer = stackalloc byte[1024];
        buffer[0] = 0;
        Dnn.cudnnGetLastErrorString(buffer, 1024);
        return NativeLibraries.PtrToString(buffer) ?? "";
    }

    /// <summary>The stand-in cuBLAS's reason for its last refusal on this thread.</summary>
    public string LastCublasError()
    {
        var f = (delegate* unmanaged<byte*>)System.Runtime.InteropServices.NativeLibrary.GetExport(Blas.Library, "cudaswaStandInCublasLastError");
        return NativeLibraries.PtrToString(f()) ?? "";
    }

    /// <summary>A status of the cuDNN 9 category <paramref name="category"/> (2000 BAD_PARAM, 3000 NOT_SUPPORTED, ...), with the sub-code given.</summary>
    internal static void IsCategory(CudnnStatus status, CudnnStatus category, int? subCode, string what)
    {
        Assert.That(CudnnApi.Category(status), Is.EqualTo(category), what);
        if (subCode is int s) Assert.That((int)status, Is.EqualTo(s), what);
    }

    public void Dispose()
    {
        if (Cudnn != IntPtr.Zero) Dnn.cudnnDestroy(Cudnn);
        if (Cublas != IntPtr.Zero) Blas.cublasDestroy(Cublas);
        Backend.Dispose();
    }
}
