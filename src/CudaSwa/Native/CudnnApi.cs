using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CudaSwa.Cuda;

namespace CudaSwa.Native;

/// <summary>
/// cuDNN's legacy API (cudnn_graph.h / cudnn_ops.h / cudnn_cnn.h), still exported by cuDNN 9
/// (deprecated, not removed): tensor/filter/convolution descriptors, convolution forward and
/// backward with algorithm search, bias, and batch normalisation. Like <see cref="CuDriver"/>, a
/// table of entry points read from ONE loaded library rather than static imports, so a backend
/// calls the cuDNN it was opened with: the one <see cref="ToolkitSelection"/> chose, or a test
/// stand-in loaded by path in the same process as a real one. Device pointers are 64-bit integers.
/// </summary>
internal sealed unsafe class CudnnApi
{
    public const int DataFloat = 0;
    public const int TensorNchw = 0;
    public const int CrossCorrelation = 1;
    public const int BatchNormSpatial = 1;
    public const int DefaultMath = 0;
    public const int TensorOpMath = 1;
    public const int FmaMath = 3;
    public const int Deterministic = 1;

    /// <summary>cudnnConvolutionFwdAlgoPerf_t and its BwdData/BwdFilter twins (same layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct AlgoPerf
    {
        public int Algo;
        public CudnnStatus Status;
        public float Time;
        public nuint Memory;
        public int Determinism;
        public int MathType;
        public int Reserved0, Reserved1, Reserved2;
    }

    private CudnnApi(IntPtr library, string path)
    {
        Library = library;
        Path = path;
        IntPtr Need(string symbol) => NativeLibrary.TryGetExport(library, symbol, out var f) ? f
            : throw new EntryPointNotFoundException($"{path} does not export {symbol} (not cuDNN 8 or 9)");
        IntPtr Optional(string symbol) => NativeLibrary.TryGetExport(library, symbol, out var f) ? f : IntPtr.Zero;

        cudnnGetVersion = (delegate* unmanaged<nuint>)Need("cudnnGetVersion");
        cudnnCreate = (delegate* unmanaged<IntPtr*, CudnnStatus>)Need("cudnnCreate");
        cudnnDestroy = (delegate* unmanaged<IntPtr, CudnnStatus>)Need("cudnnDestroy");
        cudnnSetStream = (delegate* unmanaged<IntPtr, IntPtr, CudnnStatus>)Need("cudnnSetStream");
        cudnnGetErrorString = (delegate* unmanaged<CudnnStatus, byte*>)Need("cudnnGetErrorString");
        cudnnGetLastErrorString = (delegate* unmanaged<byte*, nuint, void>)Optional("cudnnGetLastErrorString"); // cuDNN 9

        cudnnCreateTensorDescriptor = (delegate* unmanaged<IntPtr*, CudnnStatus>)Need("cudnnCreateTensorDescriptor");
        cudnnSetTensor4dDescriptor = (delegate* unmanaged<IntPtr, int, int, int, int, int, int, CudnnStatus>)Need("cudnnSetTensor4dDescriptor");
        cudnnDestroyTensorDescriptor = (delegate* unmanaged<IntPtr, CudnnStatus>)Need("cudnnDestroyTensorDescriptor");
        cudnnCreateFilterDescriptor = (delegate* unmanaged<IntPtr*, CudnnStatus>)Need("cudnnCreateFilterDescriptor");
        cudnnSetFilter4dDescriptor = (delegate* unmanaged<IntPtr, int, int, int, int, int, int, CudnnStatus>)Need("cudnnSetFilter4dDescriptor");
        cudnnDestroyFilterDescriptor = (delegate* unmanaged<IntPtr, CudnnStatus>)Need("cudnnDestroyFilterDescriptor");
        cudnnCreateConvolutionDescriptor = (delegate* unmanaged<IntPtr*, CudnnStatus>)Need("cudnnCreateConvolutionDescriptor");
        cudnnSetConvolution2dDescriptor = (delegate* unmanaged<IntPtr, int, int, int, int, int, int, int, int, CudnnStatus>)Need("cudnnSetConvolution2dDescriptor");
        cudnnSetConvolutionMathType = (delegate* unmanaged<IntPtr, int, CudnnStatus>)Need("cudnnSetConvolutionMathType");
        cudnnDestroyConvolutionDescriptor = (delegate* unmanaged<IntPtr, CudnnStatus>)Need("cudnnDestroyConvolutionDescriptor");

        cudnnFindConvolutionForwardAlgorithm = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int*, AlgoPerf*, CudnnStatus>)
            Need("cudnnFindConvolutionForwardAlgorithm");
        cudnnFindConvolutionBackwardDataAlgorithm = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int*, AlgoPerf*, CudnnStatus>)
            Need("cudnnFindConvolutionBackwardDataAlgorithm");
        cudnnFindConvolutionBackwardFilterAlgorithm = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int*, AlgoPerf*, CudnnStatus>)
            Need("cudnnFindConvolutionBackwardFilterAlgorithm");
        cudnnGetConvolutionForwardWorkspaceSize = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, nuint*, CudnnStatus>)
            Need("cudnnGetConvolutionForwardWorkspaceSize");
        cudnnGetConvolutionBackwardDataWorkspaceSize = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, nuint*, CudnnStatus>)
            Need("cudnnGetConvolutionBackwardDataWorkspaceSize");
        cudnnGetConvolutionBackwardFilterWorkspaceSize = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, nuint*, CudnnStatus>)
            Need("cudnnGetConvolutionBackwardFilterWorkspaceSize");

        cudnnConvolutionForward = (delegate* unmanaged<IntPtr, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, int, ulong, nuint, float*, IntPtr, ulong, CudnnStatus>)
            Need("cudnnConvolutionForward");
        cudnnConvolutionBackwardData = (delegate* unmanaged<IntPtr, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, int, ulong, nuint, float*, IntPtr, ulong, CudnnStatus>)
            Need("cudnnConvolutionBackwardData");
        cudnnConvolutionBackwardFilter = (delegate* unmanaged<IntPtr, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, int, ulong, nuint, float*, IntPtr, ulong, CudnnStatus>)
            Need("cudnnConvolutionBackwardFilter");
        cudnnAddTensor = (delegate* unmanaged<IntPtr, float*, IntPtr, ulong, float*, IntPtr, ulong, CudnnStatus>)Need("cudnnAddTensor");
        cudnnConvolutionBackwardBias = (delegate* unmanaged<IntPtr, float*, IntPtr, ulong, float*, IntPtr, ulong, CudnnStatus>)Need("cudnnConvolutionBackwardBias");

        cudnnBatchNormalizationForwardTraining = (delegate* unmanaged<IntPtr, int, float*, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong, ulong, double,
            ulong, ulong, double, ulong, ulong, CudnnStatus>)Need("cudnnBatchNormalizationForwardTraining");
        cudnnBatchNormalizationForwardInference = (delegate* unmanaged<IntPtr, int, float*, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong, ulong,
            ulong, ulong, double, CudnnStatus>)Need("cudnnBatchNormalizationForwardInference");
        cudnnBatchNormalizationBackward = (delegate* unmanaged<IntPtr, int, float*, float*, float*, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong,
            IntPtr, ulong, ulong, ulong, double, ulong, ulong, CudnnStatus>)Need("cudnnBatchNormalizationBackward");
    }

    /// <summary>The file the entry points come from.</summary>
    public string Path { get; }

    public IntPtr Library { get; }

    /// <summary>The entry points of an already loaded cuDNN (companions loaded first, as <see cref="ToolkitSelection"/> does).</summary>
    public static CudnnApi From(IntPtr library, string path) => new(library, path);

    public readonly delegate* unmanaged<nuint> cudnnGetVersion;
    public readonly delegate* unmanaged<IntPtr*, CudnnStatus> cudnnCreate;
    public readonly delegate* unmanaged<IntPtr, CudnnStatus> cudnnDestroy;
    public readonly delegate* unmanaged<IntPtr, IntPtr, CudnnStatus> cudnnSetStream;
    public readonly delegate* unmanaged<CudnnStatus, byte*> cudnnGetErrorString;

    /// <summary>Null before cuDNN 9.</summary>
    public readonly delegate* unmanaged<byte*, nuint, void> cudnnGetLastErrorString;

    public readonly delegate* unmanaged<IntPtr*, CudnnStatus> cudnnCreateTensorDescriptor;
    /// <summary>(desc, format, dataType, n, c, h, w)</summary>
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, int, CudnnStatus> cudnnSetTensor4dDescriptor;
    public readonly delegate* unmanaged<IntPtr, CudnnStatus> cudnnDestroyTensorDescriptor;
    public readonly delegate* unmanaged<IntPtr*, CudnnStatus> cudnnCreateFilterDescriptor;
    /// <summary>(desc, dataType, format, k, c, h, w): the filter's data type comes BEFORE its format.</summary>
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, int, CudnnStatus> cudnnSetFilter4dDescriptor;
    public readonly delegate* unmanaged<IntPtr, CudnnStatus> cudnnDestroyFilterDescriptor;
    public readonly delegate* unmanaged<IntPtr*, CudnnStatus> cudnnCreateConvolutionDescriptor;
    /// <summary>(desc, padH, padW, strideH, strideW, dilationH, dilationW, mode, computeType)</summary>
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, int, int, int, CudnnStatus> cudnnSetConvolution2dDescriptor;
    public readonly delegate* unmanaged<IntPtr, int, CudnnStatus> cudnnSetConvolutionMathType;
    public readonly delegate* unmanaged<IntPtr, CudnnStatus> cudnnDestroyConvolutionDescriptor;

    /// <summary>(handle, xDesc, wDesc, convDesc, yDesc, requested, returned, results)</summary>
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int*, AlgoPerf*, CudnnStatus> cudnnFindConvolutionForwardAlgorithm;
    /// <summary>(handle, wDesc, dyDesc, convDesc, dxDesc, requested, returned, results)</summary>
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int*, AlgoPerf*, CudnnStatus> cudnnFindConvolutionBackwardDataAlgorithm;
    /// <summary>(handle, xDesc, dyDesc, convDesc, dwDesc, requested, returned, results)</summary>
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int*, AlgoPerf*, CudnnStatus> cudnnFindConvolutionBackwardFilterAlgorithm;
    /// <summary>(handle, xDesc, wDesc, convDesc, yDesc, algo, bytes)</summary>
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, nuint*, CudnnStatus> cudnnGetConvolutionForwardWorkspaceSize;
    /// <summary>(handle, wDesc, dyDesc, convDesc, dxDesc, algo, bytes)</summary>
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, nuint*, CudnnStatus> cudnnGetConvolutionBackwardDataWorkspaceSize;
    /// <summary>(handle, xDesc, dyDesc, convDesc, dwDesc, algo, bytes)</summary>
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, nuint*, CudnnStatus> cudnnGetConvolutionBackwardFilterWorkspaceSize;

    /// <summary>(handle, alpha, xDesc, x, wDesc, w, convDesc, algo, workspace, workspaceBytes, beta, yDesc, y)</summary>
    public readonly delegate* unmanaged<IntPtr, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, int, ulong, nuint, float*, IntPtr, ulong, CudnnStatus> cudnnConvolutionForward;
    /// <summary>(handle, alpha, wDesc, w, dyDesc, dy, convDesc, algo, workspace, workspaceBytes, beta, dxDesc, dx)</summary>
    public readonly delegate* unmanaged<IntPtr, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, int, ulong, nuint, float*, IntPtr, ulong, CudnnStatus> cudnnConvolutionBackwardData;
    /// <summary>(handle, alpha, xDesc, x, dyDesc, dy, convDesc, algo, workspace, workspaceBytes, beta, dwDesc, dw)</summary>
    public readonly delegate* unmanaged<IntPtr, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, int, ulong, nuint, float*, IntPtr, ulong, CudnnStatus> cudnnConvolutionBackwardFilter;
    /// <summary>(handle, alpha, aDesc, a, beta, cDesc, c): C = alpha*A + beta*C, A broadcast over dimensions of size 1.</summary>
    public readonly delegate* unmanaged<IntPtr, float*, IntPtr, ulong, float*, IntPtr, ulong, CudnnStatus> cudnnAddTensor;
    /// <summary>(handle, alpha, dyDesc, dy, beta, dbDesc, db)</summary>
    public readonly delegate* unmanaged<IntPtr, float*, IntPtr, ulong, float*, IntPtr, ulong, CudnnStatus> cudnnConvolutionBackwardBias;

    /// <summary>(handle, mode, alpha, beta, xDesc, x, yDesc, y, bnDesc, scale, bias, exponentialAverageFactor, runningMean, runningVariance, epsilon, saveMean, saveInvVariance)</summary>
    public readonly delegate* unmanaged<IntPtr, int, float*, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong, ulong, double, ulong, ulong, double, ulong, ulong, CudnnStatus>
        cudnnBatchNormalizationForwardTraining;
    /// <summary>(handle, mode, alpha, beta, xDesc, x, yDesc, y, bnDesc, scale, bias, estimatedMean, estimatedVariance, epsilon)</summary>
    public readonly delegate* unmanaged<IntPtr, int, float*, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong, ulong, ulong, ulong, double, CudnnStatus>
        cudnnBatchNormalizationForwardInference;
    /// <summary>(handle, mode, alphaDataDiff, betaDataDiff, alphaParamDiff, betaParamDiff, xDesc, x, dyDesc, dy, dxDesc, dx, bnDesc, scale, scaleDiff, biasDiff, epsilon, savedMean, savedInvVariance)</summary>
    public readonly delegate* unmanaged<IntPtr, int, float*, float*, float*, float*, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong, IntPtr, ulong, ulong, ulong, double, ulong, ulong, CudnnStatus>
        cudnnBatchNormalizationBackward;

    /// <summary>
    /// cuDNN 9 reports sub-codes inside each category (e.g. 2002 BAD_PARAM_NULL_POINTER, 3002
    /// NOT_SUPPORTED_SHAPE); the thousands give the category (cuDNN 8's codes are the categories themselves).
    /// </summary>
    public static CudnnStatus Category(CudnnStatus status) => status == CudnnStatus.Success ? status : (CudnnStatus)((int)status / 1000 * 1000);

    /// <summary>Throws <see cref="CudaException"/> naming the failed call with cuDNN's error string and its last error message.</summary>
    public void Check(CudnnStatus status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != CudnnStatus.Success) throw new CudaException(Describe(status, call));
    }

    /// <summary>"call failed: text (code): last error message".</summary>
    public string Describe(CudnnStatus status, string call)
    {
        string text = NativeLibraries.PtrToString(cudnnGetErrorString(status)) ?? ((int)status).ToString();
        string detail = "";
        if (cudnnGetLastErrorString != null)
        {
            var buffer = stackalloc byte[1024];
            buffer[0] = 0;
            cudnnGetLastErrorString(buffer, 1024);
            detail = NativeLibraries.PtrToString(buffer) ?? "";
        }
        return $"{call} failed: {text} ({(int)status}){(detail.Length > 0 ? ": " + detail : "")}";
    }
}
