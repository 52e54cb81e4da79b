using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>
/// The CUDA backend: cuDNN for convolution, bias and batch norm (training with the
/// exponential-average factor — the on-device BN recompute —, inference, backward), cuBLAS for
/// linear layers, and NVRTC-compiled kernels (kernels/*.cu, declared in <see cref="Kernels"/>)
/// for everything else: the fused SWA update over any number of buffers in one launch, the fused
/// SGD step, softmax cross-entropy with accuracy, pooling, ReLU, dropout and the on-device
/// augmentation from uint8 images. All work goes to the legacy default stream, so ops are ordered
/// and host copies wait for them. TF32 is off by default (exact float32, comparable with the CPU
/// twin); <see cref="AllowTf32"/> turns it on.
/// </summary>
public sealed unsafe class CudaBackend : Backend
{
    private const uint Block = 256;
    private readonly CudaDevice _device;
    private readonly CuDriver _driver;
    private readonly KernelLibrary _kernels;
    private readonly IntPtr _cudnn;
    private readonly IntPtr _cublas;
    private readonly CudnnConvolutions? _convolutions;
    private readonly Dictionary<(int, int, int, int), IntPtr> _tensorDescriptors = new();
    private DeviceBuffer? _rowStats; // per-row loss and correctness of the last softmax cross-entropy
    private bool _disposed;

    private CudaBackend(CudaDevice device, bool allowTf32, ToolkitSelection libraries, bool vendorLibraries, string? cacheFolder)
    {
        _device = device;
        _driver = device.Driver;
        AllowTf32 = allowTf32;
        Toolkit = libraries;
        HasVendorLibraries = vendorLibraries;
        // Whatever is created before a failure is released again: nothing leaks from a half-built backend.
        IntPtr cudnn = IntPtr.Zero, cublas = IntPtr.Zero;
        KernelLibrary? kernels = null;
        try
        {
            kernels = new KernelLibrary(device, new KernelCompiler(cacheFolder));
            if (vendorLibraries)
            {
                // cuBLAS first: cuDNN 9's legacy convolutions load cublasLt, which must be the one chosen with it.
                Check.Cublas(CublasApi.cublasCreate(&cublas));
                Check.Cublas(CublasApi.cublasSetStream(cublas, IntPtr.Zero));
                Check.Cublas(CublasApi.cublasSetMathMode(cublas, allowTf32 ? CublasApi.Tf32TensorOpMath : CublasApi.DefaultMath));
                int cublasVersion;
                Check.Cublas(CublasApi.cublasGetVersion(cublas, &cublasVersion));
                CublasVersion = cublasVersion;
                Check.Cudnn(CudnnApi.cudnnCreate(&cudnn));
                Check.Cudnn(CudnnApi.cudnnSetStream(cudnn, IntPtr.Zero));
                CudnnVersion = (long)CudnnApi.cudnnGetVersion();
                _convolutions = new CudnnConvolutions(this, cudnn, kernels.CacheFolder,
                    $"{new string(device.Name.Where(char.IsLetterOrDigit).ToArray())}-sm{device.ComputeCapability}-cudnn{CudnnVersion}");
            }
        }
        catch
        {
            if (cudnn != IntPtr.Zero) CudnnApi.cudnnDestroy(cudnn);
            if (cublas != IntPtr.Zero) CublasApi.cublasDestroy(cublas);
            kernels?.Dispose();
            throw;
        }
        _kernels = kernels;
        _cudnn = cudnn;
        _cublas = cublas;
    }

    /// <summary>Opens device <paramref name="ordinal"/>; throws with the reason when CUDA is not usable.</summary>
    public static CudaBackend Create(int ordinal = 0, bool allowTf32 = false) => Create(ordinal, allowTf32, driver: null, vendorLibraries: true);

    /// <summary>
    /// Opens a device of <paramref name="driver"/> (the NVIDIA driver when null). Without vendor
    /// libraries the backend runs only its own kernels (cuDNN and cuBLAS ops throw
    /// <see cref="NotSupportedException"/>): that is how the tests drive it over a host-memory
    /// stand-in driver. <paramref name="cacheFolder"/> replaces the kernel and cuDNN-choice cache folder.
    /// </summary>
    internal static CudaBackend Create(int ordinal, bool allowTf32, CuDriver? driver, bool vendorLibraries, string? cacheFolder = null)
    {
        var device = CudaDevice.Open(ordinal, driver); // the driver first: without it nothing else matters
        try
        {
            var libraries = vendorLibraries ? ToolkitSelection.ForDriver(device.DriverVersion) : ToolkitSelection.ForKernels(device.DriverVersion);
            return new CudaBackend(device, allowTf32, libraries, vendorLibraries, cacheFolder);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    internal CudaDevice Device => _device;
    internal bool IsClosed => _disposed;
    internal KernelLibrary KernelLibrary => _kernels;

    /// <summary>The choice of library files behind <see cref="Libraries"/>.</summary>
    internal ToolkitSelection Toolkit { get; }

    /// <summary>The NVRTC, cuBLAS and cuDNN files in use, their versions and CUDA major.</summary>
    public CudaLibraries Libraries => Toolkit.Summary();

    /// <summary>False for a kernels-only backend (no cuDNN, no cuBLAS).</summary>
    public bool HasVendorLibraries { get; }

    /// <summary>Whether cuBLAS and cuDNN may use TF32 tensor cores (faster; inputs rounded to a 10-bit mantissa); off means exact float32.</summary>
    public bool AllowTf32 { get; }
    /// <summary>cuDNN's version as cudnnGetVersion reports it (e.g. 90100 for 9.1.0); 0 without vendor libraries.</summary>
    public long CudnnVersion { get; }
    /// <summary>cuBLAS's version as major*10000 + minor*100 + patch; 0 without vendor libraries.</summary>
    public int CublasVersion { get; }
    /// <summary>Version of the NVRTC that compiles the kernels, "major.minor".</summary>
    public string NvrtcVersion => _kernels.NvrtcVersion;
    /// <summary>
    /// Folder where compiled kernels and cuDNN algorithm choices are cached: $CUDASWA_KERNEL_CACHE, or
    /// cudaswa/kernels under $XDG_CACHE_HOME or ~/.cache, unless the backend was created with another.
    /// </summary>
    public string KernelCacheFolder => _kernels.CacheFolder;
    /// <summary>The GPU's name as the driver reports it.</summary>
    public string DeviceName => _device.Name;
    /// <summary>Compute capability as major*10 + minor (e.g. 90 for sm_90).</summary>
    public int ComputeCapability => _device.ComputeCapability;
    /// <summary>CUDA version the driver supports, as cuDriverGetVersion reports it: 1000*major + 10*minor (e.g. 12040).</summary>
    public int DriverVersion => _device.DriverVersion;

    /// <summary>The cuDNN algorithm file of this GPU and cuDNN (empty for a kernels-only backend).</summary>
    public string ConvolutionChoicesFile => _convolutions?.ChoicesFile ?? "";

    /// <summary>The cuDNN algorithms chosen for every convolution shape planned so far.</summary>
    internal IReadOnlyList<CudnnConvolutions.Choice> ConvolutionChoices => _convolutions?.Choices ?? [];

    /// <summary>Synchronise after every kernel launch, so an asynchronous error names the kernel that caused it.</summary>
    public bool LaunchBlocking
    {
        get => _kernels.LaunchBlocking;
        set => _kernels.LaunchBlocking = value;
    }

    /// <summary>Compiles (or reads from the cache) and loads every kernel now, so later timings exclude compilation.</summary>
    public void LoadAllKernels() => _kernels.LoadAll();

    /// <inheritdoc/>
    public override string Name => $"cuda:{_device.Ordinal}";

    /// <inheritdoc/>
    public override string Description =>
        $"{_device}, " + (HasVendorLibraries
            ? $"cuDNN {ToolkitSelection.FormatCudnn(CudnnVersion)}, cuBLAS {CublasVersion / 10000}.{CublasVersion % 10000 / 100}.{CublasVersion % 100}, "
            : "kernels only (no cuDNN/cuBLAS), ") +
        $"NVRTC {_kernels.NvrtcVersion}{(AllowTf32 ? ", TF32 on" : "")}";

    /// <inheritdoc/>
    public override bool MemoryIsHostVisible => false;

    private void Ctx() => _device.MakeCurrent();

    private static DevicePtr P(Tensor t) => ((CudaBuffer)t.Buffer).Address.Plus(t.Offset * t.DType.SizeInBytes());

    /// <summary>A grid-stride launch: enough blocks to fill the device, never more than the work needs.</summary>
    private uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, (long)_device.Multiprocessors * 32);

    private static uint GridExact(long threads) => (uint)((threads + Block - 1) / Block);

    private void Launch<TArgs>(KernelSpec<TArgs> kernel, uint grid, in TArgs args) where TArgs : unmanaged => _kernels.Launch(kernel, grid, Block, args);

    private NotSupportedException NoVendor(string op, string library) =>
        new($"{op} needs {library}, which this CUDA backend was created without (kernels only, as over the test stand-in driver).");

    private IntPtr Cudnn(string op) => HasVendorLibraries ? _cudnn : throw NoVendor(op, "cuDNN");

    private IntPtr Cublas(string op) => HasVendorLibraries ? _cublas : throw NoVendor(op, "cuBLAS");

    private IntPtr Descriptor(int n, int c, int h, int w)
    {
        if (_tensorDescriptors.TryGetValue((n, c, h, w), out var d)) return d;
        Check.Cudnn(CudnnApi.cudnnCreateTensorDescriptor(&d));
        try { Check.Cudnn(CudnnApi.cudnnSetTensor4dDescriptor(d, CudnnApi.TensorNchw, CudnnApi.DataFloat, n, c, h, w)); }
        catch
        {
            CudnnApi.cudnnDestroyTensorDescriptor(d);
            throw;
        }
        _tensorDescriptors[(n, c, h, w)] = d;
        return d;
    }

    private IntPtr Nchw(Tensor t) => Descriptor(t.Shape.N, t.Shape.C, t.Shape.H, t.Shape.W);

    // ---------------------------------------------------------------- memory

    /// <inheritdoc/>
    protected override DeviceBuffer AllocateCore(long length, DType dtype)
    {
        Ctx();
        return new CudaBuffer(this, _device, length, dtype);
    }

    /// <inheritdoc/>
    protected override void UploadCore(ReadOnlySpan<byte> source, Tensor destination)
    {
        Ctx();
        if (source.Length == 0) return;
        fixed (byte* s = source) _driver.Check(_driver.cuMemcpyHtoD(P(destination).Address, s, (nuint)source.Length), $"cuMemcpyHtoD({source.Length} bytes)");
    }

    /// <inheritdoc/>
    protected override void DownloadCore(Tensor source, Span<byte> destination)
    {
        Ctx();
        if (destination.Length == 0) return;
        fixed (byte* d = destination) _driver.Check(_driver.cuMemcpyDtoH(d, P(source).Address, (nuint)destination.Length), $"cuMemcpyDtoH({destination.Length} bytes)");
    }

    /// <inheritdoc/>
    protected override void FillCore(Tensor t, float value)
    {
        Ctx();
        if (t.Length == 0) return;
        _driver.Check(_driver.cuMemsetD32Async(P(t).Address, BitConverter.SingleToUInt32Bits(value), (nuint)t.Length, IntPtr.Zero), $"cuMemsetD32Async({t.Length} values)");
    }

    /// <inheritdoc/>
    protected override void CopyCore(Tensor source, Tensor destination)
    {
        Ctx();
        if (source.Length == 0) return;
        long bytes = source.Length * source.DType.SizeInBytes();
        _driver.Check(_driver.cuMemcpyDtoDAsync(P(destination).Address, P(source).Address, (nuint)bytes, IntPtr.Zero), $"cuMemcpyDtoDAsync({bytes} bytes)");
    }

    /// <inheritdoc/>
    public override void Synchronize()
    {
        Ctx();
        _driver.Check(_driver.cuCtxSynchronize());
    }

    // ---------------------------------------------------------------- convolution (cuDNN)

    private CudnnConvolutions Convolutions(string op) => _convolutions ?? throw NoVendor(op, "cuDNN");

    /// <inheritdoc/>
    protected override void PrepareConvolutionCore(ConvGeometry geometry)
    {
        if (_convolutions is null) return; // kernels only: nothing to prepare; running a convolution says why it cannot
        Ctx();
        _convolutions.Get(geometry);
    }

    private ulong WorkspacePointer => ((CudaBuffer)_convolutions!.Workspace!).Pointer;

    /// <inheritdoc/>
    protected override void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        Ctx();
        var convolutions = Convolutions("ConvolutionForward");
        float alpha = 1, beta = 0;
        for (int attempt = 0; ; attempt++)
        {
            var plan = convolutions.Get(g);
            var status = CudnnApi.cudnnConvolutionForward(_cudnn, &alpha, plan.X, P(x).Address, plan.W, P(w).Address, plan.Conv, plan.Fwd,
                WorkspacePointer, plan.WorkspaceBytes, &beta, plan.Y, P(y).Address);
            if (convolutions.Completed(plan, status, attempt, "cudnnConvolutionForward")) break;
        }
    }

    /// <inheritdoc/>
    protected override void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        Ctx();
        var convolutions = Convolutions("ConvolutionBackwardData");
        float alpha = 1, beta = accumulate ? 1 : 0;
        for (int attempt = 0; ; attempt++)
        {
            var plan = convolutions.Get(g);
            var status = CudnnApi.cudnnConvolutionBackwardData(_cudnn, &alpha, plan.W, P(w).Address, plan.Y, P(dy).Address, plan.Conv,
                plan.BwdData, WorkspacePointer, plan.WorkspaceBytes, &beta, plan.X, P(dx).Address);
            if (convolutions.Completed(plan, status, attempt, "cudnnConvolutionBackwardData")) break;
        }
    }

    /// <inheritdoc/>
    protected override void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        Ctx();
        var convolutions = Convolutions("ConvolutionBackwardFilter");
        float alpha = 1, beta = 1; // parameter gradients accumulate
        for (int attempt = 0; ; attempt++)
        {
            var plan = convolutions.Get(g);
            var status = CudnnApi.cudnnConvolutionBackwardFilter(_cudnn, &alpha, plan.X, P(x).Address, plan.Y, P(dy).Address, plan.Conv,
                plan.BwdFilter, WorkspacePointer, plan.WorkspaceBytes, &beta, plan.W, P(dw).Address);
            if (convolutions.Completed(plan, status, attempt, "cudnnConvolutionBackwardFilter")) break;
        }
    }

    /// <inheritdoc/>
    protected override void AddChannelBiasCore(Tensor y, Tensor bias)
    {
        Ctx();
        var cudnn = Cudnn("AddChannelBias");
        float alpha = 1, beta = 1;
        Check.Cudnn(CudnnApi.cudnnAddTensor(cudnn, &alpha, Descriptor(1, y.Shape.C, 1, 1), P(bias).Address, &beta, Nchw(y), P(y).Address));
    }

    /// <inheritdoc/>
    protected override void ChannelBiasBackwardCore(Tensor dy, Tensor dBias)
    {
        Ctx();
        var cudnn = Cudnn("ChannelBiasBackward");
        float alpha = 1, beta = 1;
        Check.Cudnn(CudnnApi.cudnnConvolutionBackwardBias(cudnn, &alpha, Nchw(dy), P(dy).Address, &beta, Descriptor(1, dy.Shape.C, 1, 1), P(dBias).Address));
    }

    // ---------------------------------------------------------------- batch norm (cuDNN)

    /// <inheritdoc/>
    protected override void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        Ctx();
        var cudnn = Cudnn("BatchNormForwardTraining");
        float one = 1, zero = 0;
        var d = Nchw(x);
        Check.Cudnn(CudnnApi.cudnnBatchNormalizationForwardTraining(cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, P(x).Address, d, P(y).Address,
            Descriptor(1, x.Shape.C, 1, 1), P(gamma).Address, P(beta).Address, factor, P(runningMean).Address, P(runningVar).Address, epsilon,
            P(saveMean).Address, P(saveInvStd).Address));
    }

    /// <inheritdoc/>
    protected override void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon)
    {
        Ctx();
        var cudnn = Cudnn("BatchNormForwardInference");
        float one = 1, zero = 0;
        var d = Nchw(x);
        Check.Cudnn(CudnnApi.cudnnBatchNormalizationForwardInference(cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, P(x).Address, d, P(y).Address,
            Descriptor(1, x.Shape.C, 1, 1), P(gamma).Address, P(beta).Address, P(runningMean).Address, P(runningVar).Address, epsilon));
    }

    /// <inheritdoc/>
    protected override void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx,
        Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate)
    {
        Ctx();
        var cudnn = Cudnn("BatchNormBackward");
        float one = 1, dataBeta = accumulate ? 1 : 0, paramBeta = 1;
        var d = Nchw(x);
        Check.Cudnn(CudnnApi.cudnnBatchNormalizationBackward(cudnn, CudnnApi.BatchNormSpatial, &one, &dataBeta, &one, &paramBeta,
            d, P(x).Address, d, P(dy).Address, d, P(dx).Address, Descriptor(1, x.Shape.C, 1, 1), P(gamma).Address, P(dGamma).Address, P(dBeta).Address,
            epsilon, P(saveMean).Address, P(saveInvStd).Address));
    }

    /// <inheritdoc/>
    protected override void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon, long batchCount, long previousCount,
        Tensor accMean, Tensor accM2)
    {
        Ctx();
        int c = (int)saveMean.Length;
        Launch(Kernels.BnMergeStatistics, GridExact(c), new(P(saveMean), P(saveInvStd), P(accMean), P(accM2), c, epsilon, batchCount, previousCount));
    }

    // ---------------------------------------------------------------- elementwise, pooling, dropout (kernels)

    /// <inheritdoc/>
    protected override void ReluForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        Launch(Kernels.ReluForward, Grid(x.Length), new(P(x), P(y), x.Length));
    }

    /// <inheritdoc/>
    protected override void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        Launch(Kernels.ReluBackward, Grid(y.Length), new(P(y), P(dy), P(dx), y.Length, accumulate));
    }

    /// <inheritdoc/>
    protected override void AddCore(Tensor a, Tensor b, Tensor y)
    {
        Ctx();
        Launch(Kernels.Add, Grid(a.Length), new(P(a), P(b), P(y), a.Length));
    }

    /// <inheritdoc/>
    protected override void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate)
    {
        Ctx();
        if (!accumulate)
        {
            CopyCore(source, destination);
            return;
        }
        Launch(Kernels.Accumulate, Grid(source.Length), new(P(source), P(destination), source.Length, true));
    }

    /// <inheritdoc/>
    protected override void GlobalAveragePoolForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        long planes = (long)x.Shape.N * x.Shape.C;
        Launch(Kernels.GlobalAvgPoolForward, GridExact(planes * 32), new(P(x), P(y), planes, x.Shape.H * x.Shape.W));
    }

    /// <inheritdoc/>
    protected override void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        long planes = (long)dx.Shape.N * dx.Shape.C;
        Launch(Kernels.GlobalAvgPoolBackward, Grid(dx.Length), new(P(dy), P(dx), planes, dx.Shape.H * dx.Shape.W, accumulate));
    }

    /// <inheritdoc/>
    protected override void MaxPoolForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        Launch(Kernels.MaxPoolForward, Grid(y.Length), new(P(x), P(y), (long)x.Shape.N * x.Shape.C, x.Shape.H, x.Shape.W));
    }

    /// <inheritdoc/>
    protected override void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        // Odd sizes leave a last row/column that no window covers: clear dx first so it gets 0.
        if (!accumulate && ((x.Shape.H | x.Shape.W) & 1) != 0)
        {
            FillCore(dx, 0f);
            accumulate = true;
        }
        Launch(Kernels.MaxPoolBackward, Grid(dy.Length), new(P(x), P(dy), P(dx), (long)x.Shape.N * x.Shape.C, x.Shape.H, x.Shape.W, accumulate));
    }

    /// <inheritdoc/>
    protected override void DropoutForwardCore(Tensor x, Tensor y, float pDrop, ulong seed, ulong stream)
    {
        Ctx();
        Launch(Kernels.DropoutForward, Grid((x.Length + 3) / 4),
            new(P(x), P(y), x.Length, pDrop, (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32)));
    }

    /// <inheritdoc/>
    protected override void DropoutBackwardCore(Tensor dy, Tensor dx, float pDrop, ulong seed, ulong stream, bool accumulate)
    {
        Ctx();
        Launch(Kernels.DropoutBackward, Grid((dy.Length + 3) / 4),
            new(P(dy), P(dx), dy.Length, pDrop, (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)(stream >> 32), accumulate));
    }

    // ---------------------------------------------------------------- linear (cuBLAS, column-major views of row-major data)

    /// <inheritdoc/>
    protected override void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        Ctx();
        var cublas = Cublas("LinearForward");
        int n = x.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float alpha = 1, beta = 0;
        // Y^T (out x n) = W (out x in) * X^T (in x n); row-major W is column-major W^T, hence op T.
        Check.Cublas(CublasApi.cublasSgemm(cublas, CublasApi.OpT, CublasApi.OpN, outF, n, inF, &alpha, P(w).Address, inF, P(x).Address, inF, &beta, P(y).Address, outF));
        Launch(Kernels.AddRowBias, Grid((long)n * outF), new(P(y), P(b), n, outF));
    }

    /// <inheritdoc/>
    protected override void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        Ctx();
        var cublas = Cublas("LinearBackwardData");
        int n = dy.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float alpha = 1, beta = accumulate ? 1 : 0;
        // dX^T (in x n) = W^T (in x out) * dY^T (out x n).
        Check.Cublas(CublasApi.cublasSgemm(cublas, CublasApi.OpN, CublasApi.OpN, inF, n, outF, &alpha, P(w).Address, inF, P(dy).Address, outF, &beta, P(dx).Address, inF));
    }

    /// <inheritdoc/>
    protected override void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        Ctx();
        var cublas = Cublas("LinearBackwardWeights");
        int n = x.Shape.N, inF = dw.Shape.C, outF = dw.Shape.N;
        float alpha = 1, beta = 1;
        // dW^T (in x out) += X^T (in x n) * dY (n x out).
        Check.Cublas(CublasApi.cublasSgemm(cublas, CublasApi.OpN, CublasApi.OpT, inF, outF, n, &alpha, P(x).Address, inF, P(dy).Address, outF, &beta, P(dw).Address, inF));
        Launch(Kernels.ColumnSumAccumulate, GridExact(outF), new(P(dy), P(db), n, outF));
    }

    // ---------------------------------------------------------------- loss

    /// <inheritdoc/>
    protected override void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats)
    {
        Ctx();
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        if (_rowStats is null || _rowStats.Length < 2L * n)
        {
            _rowStats?.Dispose();
            _rowStats = AllocateCore(2L * Math.Max(n, 256), DType.Float32);
        }
        var rowLoss = ((CudaBuffer)_rowStats).Address;
        var rowCorrect = rowLoss.Plus(4L * n);
        Launch(Kernels.SoftmaxCrossEntropy, GridExact((long)n * 32),
            new(P(logits), P(labels), dLogits.IsNull ? DevicePtr.Null : P(dLogits), rowLoss, rowCorrect, n, k));
        Launch(Kernels.AddRowStats, 1, new(rowLoss, rowCorrect, n, P(stats)));
    }

    /// <inheritdoc/>
    protected override void SoftmaxCore(Tensor logits, Tensor probabilities)
    {
        Ctx();
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        Launch(Kernels.Softmax, GridExact((long)n * 32), new(P(logits), P(probabilities), n, k));
    }

    // ---------------------------------------------------------------- optimisation and averaging

    /// <inheritdoc/>
    protected override void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper h)
    {
        Ctx();
        Launch(Kernels.SgdStep, Grid(weights.Length),
            new(P(weights), P(gradients), P(velocity), weights.Length, h.LearningRate, h.Momentum, h.WeightDecay, h.Nesterov));
    }

    /// <summary>Elements per block of the multi-tensor average update.</summary>
    public const int AverageChunk = 16384;

    /// <inheritdoc/>
    protected override AveragePlan PrepareAverageCore(AveragePair[] pairs)
    {
        Ctx();
        return new CudaAveragePlan(this, pairs, AverageChunk);
    }

    /// <inheritdoc/>
    protected override void AverageUpdateCore(AveragePlan plan, float alpha)
    {
        Ctx();
        var p = (CudaAveragePlan)plan;
        if (p.Chunks == 0) return;
        Launch(Kernels.AverageUpdate, (uint)p.Chunks, new(p.Averages, p.Currents, p.Lengths, p.ChunkPair, p.ChunkStart, AverageChunk, alpha));
    }

    internal static DevicePtr AddressOf(Tensor t) => P(t);

    // ---------------------------------------------------------------- data

    /// <inheritdoc/>
    protected override void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels)
    {
        Ctx();
        int c = x.Shape.C;
        if (c > 4) throw new NotSupportedException($"On-device augmentation handles up to 4 channels; got {c}.");
        Span<float> scale = stackalloc float[4];
        Span<float> shift = stackalloc float[4];
        for (int ch = 0; ch < c; ch++)
        {
            scale[ch] = 1f / (255f * spec.Std[ch]);   // exactly as the CPU twin computes them
            shift[ch] = -spec.Mean[ch] / spec.Std[ch];
        }
        Launch(Kernels.AugmentBatch, Grid(x.Length), new(P(images), P(sourceLabels), P(indices), P(x), P(labels),
            x.Shape.N, c, x.Shape.H, x.Shape.W, spec.Pad, spec.Crop, spec.Flip, spec.Padding == PaddingMode.Reflect, epoch,
            (uint)spec.Seed, (uint)(spec.Seed >> 32), scale[0], scale[1], scale[2], scale[3], shift[0], shift[1], shift[2], shift[3]));
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        using (_device.Activate())
        {
            _rowStats?.Dispose();
            _convolutions?.Dispose();
            foreach (var d in _tensorDescriptors.Values) CudnnApi.cudnnDestroyTensorDescriptor(d);
            _tensorDescriptors.Clear();
            if (_cudnn != IntPtr.Zero) CudnnApi.cudnnDestroy(_cudnn);
            if (_cublas != IntPtr.Zero) CublasApi.cublasDestroy(_cublas);
            _kernels.Dispose();
        }
        _device.Dispose();
    }
}
