using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>
/// cuDNN's legacy API (cudnn_graph.h / cudnn_ops.h / cudnn_cnn.h), still exported by cuDNN 9
/// (deprecated, not removed): tensor/filter/convolution descriptors, convolution forward and
/// backward with algorithm search, bias, and batch normalisation.
/// </summary>
internal static unsafe partial class CudnnApi
{
    static CudnnApi() => NativeLibraries.Register();

    public const int DataFloat = 0;
    public const int TensorNchw = 0;
    public const int CrossCorrelation = 1;
    public const int BatchNormSpatial = 1;
    public const int TensorOpMath = 1;
    public const int FmaMath = 3;

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

    [LibraryImport(NativeLibraries.Cudnn)] public static partial nuint cudnnGetVersion();
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnCreate(IntPtr* handle);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnDestroy(IntPtr handle);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnSetStream(IntPtr handle, IntPtr stream);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial byte* cudnnGetErrorString(CudnnStatus status);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial void cudnnGetLastErrorString(byte* message, nuint maxSize);

    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnCreateTensorDescriptor(IntPtr* desc);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnSetTensor4dDescriptor(IntPtr desc, int format, int dataType, int n, int c, int h, int w);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnDestroyTensorDescriptor(IntPtr desc);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnCreateFilterDescriptor(IntPtr* desc);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnSetFilter4dDescriptor(IntPtr desc, int dataType, int format, int k, int c, int h, int w);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnDestroyFilterDescriptor(IntPtr desc);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnCreateConvolutionDescriptor(IntPtr* desc);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnSetConvolution2dDescriptor(IntPtr desc, int padH, int padW, int strideH, int strideW, int dilationH, int dilationW, int mode, int computeType);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnSetConvolutionMathType(IntPtr desc, int mathType);
    [LibraryImport(NativeLibraries.Cudnn)] public static partial CudnnStatus cudnnDestroyConvolutionDescriptor(IntPtr desc);

    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnFindConvolutionForwardAlgorithm(IntPtr handle, IntPtr xDesc, IntPtr wDesc, IntPtr convDesc, IntPtr yDesc,
        int requested, int* returned, AlgoPerf* results);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnFindConvolutionBackwardDataAlgorithm(IntPtr handle, IntPtr wDesc, IntPtr dyDesc, IntPtr convDesc, IntPtr dxDesc,
        int requested, int* returned, AlgoPerf* results);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnFindConvolutionBackwardFilterAlgorithm(IntPtr handle, IntPtr xDesc, IntPtr dyDesc, IntPtr convDesc, IntPtr dwDesc,
        int requested, int* returned, AlgoPerf* results);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnGetConvolutionForwardWorkspaceSize(IntPtr handle, IntPtr xDesc, IntPtr wDesc, IntPtr convDesc, IntPtr yDesc, int algo, nuint* bytes);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnGetConvolutionBackwardDataWorkspaceSize(IntPtr handle, IntPtr wDesc, IntPtr dyDesc, IntPtr convDesc, IntPtr dxDesc, int algo, nuint* bytes);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnGetConvolutionBackwardFilterWorkspaceSize(IntPtr handle, IntPtr xDesc, IntPtr dyDesc, IntPtr convDesc, IntPtr dwDesc, int algo, nuint* bytes);

    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnConvolutionForward(IntPtr handle, float* alpha, IntPtr xDesc, ulong x, IntPtr wDesc, ulong w, IntPtr convDesc, int algo,
        ulong workspace, nuint workspaceBytes, float* beta, IntPtr yDesc, ulong y);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnConvolutionBackwardData(IntPtr handle, float* alpha, IntPtr wDesc, ulong w, IntPtr dyDesc, ulong dy, IntPtr convDesc, int algo,
        ulong workspace, nuint workspaceBytes, float* beta, IntPtr dxDesc, ulong dx);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnConvolutionBackwardFilter(IntPtr handle, float* alpha, IntPtr xDesc, ulong x, IntPtr dyDesc, ulong dy, IntPtr convDesc, int algo,
        ulong workspace, nuint workspaceBytes, float* beta, IntPtr dwDesc, ulong dw);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnAddTensor(IntPtr handle, float* alpha, IntPtr aDesc, ulong a, float* beta, IntPtr cDesc, ulong c);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnConvolutionBackwardBias(IntPtr handle, float* alpha, IntPtr dyDesc, ulong dy, float* beta, IntPtr dbDesc, ulong db);

    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnBatchNormalizationForwardTraining(IntPtr handle, int mode, float* alpha, float* beta, IntPtr xDesc, ulong x,
        IntPtr yDesc, ulong y, IntPtr scaleBiasMeanVarDesc, ulong scale, ulong bias, double exponentialAverageFactor,
        ulong runningMean, ulong runningVariance, double epsilon, ulong saveMean, ulong saveInvVariance);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnBatchNormalizationForwardInference(IntPtr handle, int mode, float* alpha, float* beta, IntPtr xDesc, ulong x,
        IntPtr yDesc, ulong y, IntPtr scaleBiasMeanVarDesc, ulong scale, ulong bias, ulong estimatedMean, ulong estimatedVariance, double epsilon);
    [LibraryImport(NativeLibraries.Cudnn)]
    public static partial CudnnStatus cudnnBatchNormalizationBackward(IntPtr handle, int mode, float* alphaDataDiff, float* betaDataDiff,
        float* alphaParamDiff, float* betaParamDiff, IntPtr xDesc, ulong x, IntPtr dyDesc, ulong dy, IntPtr dxDesc, ulong dx,
        IntPtr scaleBiasDiffDesc, ulong scale, ulong scaleDiff, ulong biasDiff, double epsilon, ulong savedMean, ulong savedInvVariance);
}
