using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>
/// The CUDA backend: cuDNN for convolution, bias and batch norm (training with the
/// exponential-average factor — the on-device BN recompute —, inference, backward), cuBLAS for
/// linear layers, and NVRTC-compiled kernels (kernels/*.cu) for everything else: the fused SWA
/// update over any number of buffers in one launch, the fused SGD step, softmax cross-entropy
/// with accuracy, pooling, ReLU, dropout and the on-device augmentation from uint8 images.
/// All work goes to the legacy default stream, so ops are ordered and host copies wait for them.
/// TF32 is off by default (exact float32, comparable with the CPU twin); <see cref="AllowTf32"/> turns it on.
/// </summary>
public sealed unsafe class CudaBackend : Backend
{
    private const uint Block = 256;
    private readonly CudaDevice _device;
    private readonly KernelLibrary _kernels;
    private readonly IntPtr _cudnn;
    private readonly IntPtr _cublas;
    private readonly CudnnConvolutions _convolutions;
    private readonly Dictionary<(int, int, int, int), IntPtr> _tensorDescriptors = new();
    private readonly List<(string Key, DeviceBuffer Tables, int Chunks)> _averageTables = [];
    private DeviceBuffer? _rowStats; // per-row loss and correctness of the last softmax cross-entropy
    private bool _disposed;

    private CudaBackend(CudaDevice device, bool allowTf32)
    {
        _device = device;
        AllowTf32 = allowTf32;
        _kernels = new KernelLibrary(device);
        IntPtr cudnn, cublas;
        if (!NativeLibraries.TryLoad(NativeLibraries.Cudnn, out _, out _))
            throw new DllNotFoundException($"cuDNN 9 (libcudnn.so.9) was not found ({NativeLibraries.Trace(NativeLibraries.Cudnn)})");
        Check.Cudnn(CudnnApi.cudnnCreate(&cudnn));
        Check.Cudnn(CudnnApi.cudnnSetStream(cudnn, IntPtr.Zero));
        if (!NativeLibraries.TryLoad(NativeLibraries.Cublas, out _, out _))
            throw new DllNotFoundException($"cuBLAS (libcublas.so.13/.12) was not found ({NativeLibraries.Trace(NativeLibraries.Cublas)})");
        Check.Cublas(CublasApi.cublasCreate(&cublas));
        Check.Cublas(CublasApi.cublasSetStream(cublas, IntPtr.Zero));
        Check.Cublas(CublasApi.cublasSetMathMode(cublas, allowTf32 ? CublasApi.Tf32TensorOpMath : CublasApi.DefaultMath));
        _cudnn = cudnn;
        _cublas = cublas;
        CudnnVersion = (long)CudnnApi.cudnnGetVersion();
        int cublasVersion;
        Check.Cublas(CublasApi.cublasGetVersion(cublas, &cublasVersion));
        CublasVersion = cublasVersion;
        _convolutions = new CudnnConvolutions(this, cudnn, _kernels.CacheFolder,
            $"{new string(device.Name.Where(char.IsLetterOrDigit).ToArray())}-sm{device.ComputeCapability}-cudnn{CudnnVersion}");
    }

    /// <summary>Opens device <paramref name="ordinal"/>; throws with the reason when CUDA is not usable.</summary>
    public static CudaBackend Create(int ordinal = 0, bool allowTf32 = false)
    {
        var device = CudaDevice.Open(ordinal); // the driver first: without it nothing else matters
        try
        {
            if (!NativeLibraries.TryLoad(NativeLibraries.Nvrtc, out _, out _))
                throw new DllNotFoundException($"NVRTC (libnvrtc.so.13/.12) was not found ({NativeLibraries.Trace(NativeLibraries.Nvrtc)})");
            return new CudaBackend(device, allowTf32);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    public CudaDevice Device => _device;
    public bool AllowTf32 { get; }
    public long CudnnVersion { get; }
    public int CublasVersion { get; }
    public KernelLibrary Kernels => _kernels;

    public override string Name => $"cuda:{_device.Ordinal}";

    public override string Description =>
        $"{_device}, cuDNN {CudnnVersion / 10000}.{CudnnVersion % 10000 / 100}.{CudnnVersion % 100}, cuBLAS {CublasVersion / 10000}.{CublasVersion % 10000 / 100}, " +
        $"NVRTC {_kernels.NvrtcVersion}{(AllowTf32 ? ", TF32 on" : "")}";

    public override bool IsCuda => true;

    private void Ctx() => _device.MakeCurrent();

    private static ulong P(Tensor t) => ((CudaBuffer)t.Buffer).Pointer + (ulong)(t.Offset * t.DType.SizeInBytes());

    private uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, (long)_device.Multiprocessors * 32);

    private static uint GridExact(long threads) => (uint)((threads + Block - 1) / Block);

    private IntPtr K(string file, string kernel) => _kernels.Function(file, kernel);

    private IntPtr Descriptor(int n, int c, int h, int w)
    {
        if (_tensorDescriptors.TryGetValue((n, c, h, w), out var d)) return d;
        Check.Cudnn(CudnnApi.cudnnCreateTensorDescriptor(&d));
        Check.Cudnn(CudnnApi.cudnnSetTensor4dDescriptor(d, CudnnApi.TensorNchw, CudnnApi.DataFloat, n, c, h, w));
        _tensorDescriptors[(n, c, h, w)] = d;
        return d;
    }

    private IntPtr Nchw(Tensor t) => Descriptor(t.Shape.N, t.Shape.C, t.Shape.H, t.Shape.W);

    // ---------------------------------------------------------------- memory

    protected override DeviceBuffer AllocateCore(long length, DType dtype)
    {
        Ctx();
        return new CudaBuffer(this, _device, length, dtype);
    }

    protected override void UploadCore(ReadOnlySpan<byte> source, Tensor destination)
    {
        Ctx();
        if (source.Length == 0) return;
        fixed (byte* s = source) Check.Cu(CuDriver.cuMemcpyHtoD(P(destination), s, (nuint)source.Length));
    }

    protected override void DownloadCore(Tensor source, Span<byte> destination)
    {
        Ctx();
        if (destination.Length == 0) return;
        fixed (byte* d = destination) Check.Cu(CuDriver.cuMemcpyDtoH(d, P(source), (nuint)destination.Length));
    }

    protected override void FillCore(Tensor t, float value)
    {
        Ctx();
        Check.Cu(CuDriver.cuMemsetD32Async(P(t), BitConverter.SingleToUInt32Bits(value), (nuint)t.Length, IntPtr.Zero));
    }

    protected override void CopyCore(Tensor source, Tensor destination)
    {
        Ctx();
        if (source.Length == 0) return;
        Check.Cu(CuDriver.cuMemcpyDtoDAsync(P(destination), P(source), (nuint)(source.Length * source.DType.SizeInBytes()), IntPtr.Zero));
    }

    public override void Synchronize()
    {
        Ctx();
        Check.Cu(CuDriver.cuCtxSynchronize());
    }

    // ---------------------------------------------------------------- convolution (cuDNN)

    protected override void PrepareConvolutionCore(ConvGeometry geometry)
    {
        Ctx();
        _convolutions.Get(geometry);
    }

    private (ulong Workspace, nuint Bytes) Workspace(CudnnConvolutions.Plan plan) =>
        (((CudaBuffer)_convolutions.Workspace!).Pointer, plan.WorkspaceBytes);

    protected override void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g)
    {
        Ctx();
        var plan = _convolutions.Get(g);
        var (ws, bytes) = Workspace(plan);
        float alpha = 1, beta = 0;
        Check.Cudnn(CudnnApi.cudnnConvolutionForward(_cudnn, &alpha, plan.X, P(x), plan.W, P(w), plan.Conv, plan.Fwd, ws, bytes, &beta, plan.Y, P(y)));
    }

    protected override void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate)
    {
        Ctx();
        var plan = _convolutions.Get(g);
        var (ws, bytes) = Workspace(plan);
        float alpha = 1, beta = accumulate ? 1 : 0;
        Check.Cudnn(CudnnApi.cudnnConvolutionBackwardData(_cudnn, &alpha, plan.W, P(w), plan.Y, P(dy), plan.Conv, plan.BwdData, ws, bytes, &beta, plan.X, P(dx)));
    }

    protected override void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g)
    {
        Ctx();
        var plan = _convolutions.Get(g);
        var (ws, bytes) = Workspace(plan);
        float alpha = 1, beta = 1; // parameter gradients accumulate
        Check.Cudnn(CudnnApi.cudnnConvolutionBackwardFilter(_cudnn, &alpha, plan.X, P(x), plan.Y, P(dy), plan.Conv, plan.BwdFilter, ws, bytes, &beta, plan.W, P(dw)));
    }

    protected override void AddChannelBiasCore(Tensor y, Tensor bias)
    {
        Ctx();
        float alpha = 1, beta = 1;
        Check.Cudnn(CudnnApi.cudnnAddTensor(_cudnn, &alpha, Descriptor(1, y.Shape.C, 1, 1), P(bias), &beta, Nchw(y), P(y)));
    }

    protected override void ChannelBiasBackwardCore(Tensor dy, Tensor dBias)
    {
        Ctx();
        float alpha = 1, beta = 1;
        Check.Cudnn(CudnnApi.cudnnConvolutionBackwardBias(_cudnn, &alpha, Nchw(dy), P(dy), &beta, Descriptor(1, dy.Shape.C, 1, 1), P(dBias)));
    }

    // ---------------------------------------------------------------- batch norm (cuDNN)

    protected override void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        Ctx();
        float one = 1, zero = 0;
        var d = Nchw(x);
        Check.Cudnn(CudnnApi.cudnnBatchNormalizationForwardTraining(_cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, P(x), d, P(y),
            Descriptor(1, x.Shape.C, 1, 1), P(gamma), P(beta), factor, P(runningMean), P(runningVar), epsilon, P(saveMean), P(saveInvStd)));
    }

    protected override void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon)
    {
        Ctx();
        float one = 1, zero = 0;
        var d = Nchw(x);
        Check.Cudnn(CudnnApi.cudnnBatchNormalizationForwardInference(_cudnn, CudnnApi.BatchNormSpatial, &one, &zero, d, P(x), d, P(y),
            Descriptor(1, x.Shape.C, 1, 1), P(gamma), P(beta), P(runningMean), P(runningVar), epsilon));
    }

    protected override void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx,
        Tensor dGamma, Tensor dBeta, bool accumulate)
    {
        Ctx();
        float one = 1, dataBeta = accumulate ? 1 : 0, paramBeta = 1;
        var d = Nchw(x);
        Check.Cudnn(CudnnApi.cudnnBatchNormalizationBackward(_cudnn, CudnnApi.BatchNormSpatial, &one, &dataBeta, &one, &paramBeta,
            d, P(x), d, P(dy), d, P(dx), Descriptor(1, x.Shape.C, 1, 1), P(gamma), P(dGamma), P(dBeta), BatchNormEpsilon(), P(saveMean), P(saveInvStd)));
    }

    /// <summary>cuDNN's backward takes epsilon again; every BN layer here uses the same one.</summary>
    private static double BatchNormEpsilon() => Layers.BatchNorm2d.Epsilon;

    protected override void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon, long batchCount, long previousCount,
        Tensor accMean, Tensor accM2)
    {
        Ctx();
        int c = (int)saveMean.Length;
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(saveMean)).Ptr(P(saveInvStd)).Ptr(P(accMean)).Ptr(P(accM2)).I32(c).F64(epsilon).F64(batchCount).F64(previousCount)
            .Launch(K("batchnorm.cu", "bn_merge_statistics"), GridExact(c), Block, "bn_merge_statistics");
    }

    // ---------------------------------------------------------------- elementwise, pooling, dropout (kernels)

    protected override void ReluForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(x)).Ptr(P(y)).I64(x.Length).Launch(K("pointwise.cu", "relu_forward"), Grid(x.Length), Block, "relu_forward");
    }

    protected override void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(y)).Ptr(P(dy)).Ptr(P(dx)).I64(y.Length).I32(accumulate ? 1 : 0)
            .Launch(K("pointwise.cu", "relu_backward"), Grid(y.Length), Block, "relu_backward");
    }

    protected override void AddCore(Tensor a, Tensor b, Tensor y)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(a)).Ptr(P(b)).Ptr(P(y)).I64(a.Length).Launch(K("pointwise.cu", "add"), Grid(a.Length), Block, "add");
    }

    protected override void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate)
    {
        Ctx();
        if (!accumulate)
        {
            CopyCore(source, destination);
            return;
        }
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(source)).Ptr(P(destination)).I64(source.Length).I32(1)
            .Launch(K("pointwise.cu", "accumulate"), Grid(source.Length), Block, "accumulate");
    }

    protected override void GlobalAveragePoolForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        long planes = (long)x.Shape.N * x.Shape.C;
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(x)).Ptr(P(y)).I64(planes).I32(x.Shape.H * x.Shape.W)
            .Launch(K("pooling.cu", "global_avg_pool_forward"), GridExact(planes * 32), Block, "global_avg_pool_forward");
    }

    protected override void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        long planes = (long)dx.Shape.N * dx.Shape.C;
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(dy)).Ptr(P(dx)).I64(planes).I32(dx.Shape.H * dx.Shape.W).I32(accumulate ? 1 : 0)
            .Launch(K("pooling.cu", "global_avg_pool_backward"), Grid(dx.Length), Block, "global_avg_pool_backward");
    }

    protected override void MaxPoolForwardCore(Tensor x, Tensor y)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(x)).Ptr(P(y)).I64((long)x.Shape.N * x.Shape.C).I32(x.Shape.H).I32(x.Shape.W)
            .Launch(K("pooling.cu", "max_pool_forward"), Grid(y.Length), Block, "max_pool_forward");
    }

    protected override void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate)
    {
        Ctx();
        // Odd sizes leave a last row/column that no window covers: clear dx first so it gets 0.
        if (!accumulate && ((x.Shape.H | x.Shape.W) & 1) != 0)
        {
            FillCore(dx, 0f);
            accumulate = true;
        }
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(x)).Ptr(P(dy)).Ptr(P(dx)).I64((long)x.Shape.N * x.Shape.C).I32(x.Shape.H).I32(x.Shape.W).I32(accumulate ? 1 : 0)
            .Launch(K("pooling.cu", "max_pool_backward"), Grid(dy.Length), Block, "max_pool_backward");
    }

    protected override void DropoutForwardCore(Tensor x, Tensor y, float pDrop, ulong seed, ulong stream)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(x)).Ptr(P(y)).I64(x.Length).F32(pDrop).U32((uint)seed).U32((uint)(seed >> 32)).U32((uint)stream).U32((uint)(stream >> 32))
            .Launch(K("pointwise.cu", "dropout_forward"), Grid((x.Length + 3) / 4), Block, "dropout_forward");
    }

    protected override void DropoutBackwardCore(Tensor dy, Tensor dx, float pDrop, ulong seed, ulong stream, bool accumulate)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(dy)).Ptr(P(dx)).I64(dy.Length).F32(pDrop).U32((uint)seed).U32((uint)(seed >> 32)).U32((uint)stream).U32((uint)(stream >> 32))
            .I32(accumulate ? 1 : 0).Launch(K("pointwise.cu", "dropout_backward"), Grid((dy.Length + 3) / 4), Block, "dropout_backward");
    }

    // ---------------------------------------------------------------- linear (cuBLAS, column-major views of row-major data)

    protected override void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        Ctx();
        int n = x.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float alpha = 1, beta = 0;
        // Y^T (out x n) = W (out x in) * X^T (in x n); row-major W is column-major W^T, hence op T.
        Check.Cublas(CublasApi.cublasSgemm(_cublas, CublasApi.OpT, CublasApi.OpN, outF, n, inF, &alpha, P(w), inF, P(x), inF, &beta, P(y), outF));
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(y)).Ptr(P(b)).I64(n).I32(outF).Launch(K("pointwise.cu", "add_row_bias"), Grid((long)n * outF), Block, "add_row_bias");
    }

    protected override void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        Ctx();
        int n = dy.Shape.N, inF = w.Shape.C, outF = w.Shape.N;
        float alpha = 1, beta = accumulate ? 1 : 0;
        // dX^T (in x n) = W^T (in x out) * dY^T (out x n).
        Check.Cublas(CublasApi.cublasSgemm(_cublas, CublasApi.OpN, CublasApi.OpN, inF, n, outF, &alpha, P(w), inF, P(dy), outF, &beta, P(dx), inF));
    }

    protected override void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        Ctx();
        int n = x.Shape.N, inF = dw.Shape.C, outF = dw.Shape.N;
        float alpha = 1, beta = 1;
        // dW^T (in x out) += X^T (in x n) * dY (n x out).
        Check.Cublas(CublasApi.cublasSgemm(_cublas, CublasApi.OpN, CublasApi.OpT, inF, outF, n, &alpha, P(x), inF, P(dy), outF, &beta, P(dw), inF));
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(dy)).Ptr(P(db)).I32(n).I32(outF).Launch(K("pointwise.cu", "column_sum_accumulate"), GridExact(outF), Block, "column_sum_accumulate");
    }

    // ---------------------------------------------------------------- loss

    protected override void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats)
    {
        Ctx();
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        if (_rowStats is null || _rowStats.Length < 2L * n)
        {
            _rowStats?.Dispose();
            _rowStats = AllocateCore(2L * Math.Max(n, 256), DType.Float32);
        }
        ulong rowLoss = ((CudaBuffer)_rowStats).Pointer, rowCorrect = rowLoss + (ulong)(4 * n);
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(logits)).Ptr(P(labels)).Ptr(dLogits.IsNull ? 0UL : P(dLogits)).Ptr(rowLoss).Ptr(rowCorrect).I32(n).I32(k)
            .Launch(K("loss.cu", "softmax_cross_entropy"), GridExact((long)n * 32), Block, "softmax_cross_entropy");
        byte* v2 = stackalloc byte[256]; void** p2 = stackalloc void*[32];
        new KernelArgs(v2, p2).Ptr(rowLoss).Ptr(rowCorrect).I32(n).Ptr(P(stats)).Launch(K("loss.cu", "add_row_stats"), 1, Block, "add_row_stats");
    }

    protected override void SoftmaxCore(Tensor logits, Tensor probabilities)
    {
        Ctx();
        int n = logits.Shape.N, k = (int)logits.Shape.SampleLength;
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(logits)).Ptr(P(probabilities)).I32(n).I32(k).Launch(K("loss.cu", "softmax"), GridExact((long)n * 32), Block, "softmax");
    }

    // ---------------------------------------------------------------- optimisation and averaging

    protected override void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper h)
    {
        Ctx();
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(weights)).Ptr(P(gradients)).Ptr(P(velocity)).I64(weights.Length)
            .F32(h.LearningRate).F32(h.Momentum).F32(h.WeightDecay).I32(h.Nesterov ? 1 : 0)
            .Launch(K("optim.cu", "sgd_step"), Grid(weights.Length), Block, "sgd_step");
    }

    /// <summary>Elements per block of the multi-tensor update.</summary>
    public const int AverageChunk = 16384;

    protected override void AverageUpdateCore(ReadOnlySpan<AveragePair> pairs, float alpha)
    {
        Ctx();
        var (tables, chunks) = AverageTables(pairs);
        ulong t = ((CudaBuffer)tables).Pointer;
        int n = pairs.Length;
        // Table layout: averages u64[n], currents u64[n], lengths i64[n], chunk starts i64[chunks], chunk pairs i32[chunks].
        ulong averages = t, currents = t + (ulong)(8 * n), lengths = t + (ulong)(16 * n), starts = t + (ulong)(24 * n), chunkPairs = starts + (ulong)(8 * chunks);
        byte* v = stackalloc byte[256]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(averages).Ptr(currents).Ptr(lengths).Ptr(chunkPairs).Ptr(starts).I32(AverageChunk).F32(alpha)
            .Launch(K("optim.cu", "multi_tensor_average"), (uint)chunks, Block, "multi_tensor_average");
    }

    /// <summary>
    /// The device tables for a set of pairs, built and uploaded the first time that set is seen
    /// (pointers and lengths do not change between updates), so an update is a single launch.
    /// </summary>
    private (DeviceBuffer Tables, int Chunks) AverageTables(ReadOnlySpan<AveragePair> pairs)
    {
        var key = new System.Text.StringBuilder();
        foreach (var pair in pairs) key.Append(P(pair.Average)).Append(',').Append(P(pair.Current)).Append(',').Append(pair.Average.Length).Append(';');
        string k = key.ToString();
        foreach (var cached in _averageTables)
            if (cached.Key == k) return (cached.Tables, cached.Chunks);
        int n = pairs.Length;
        var starts = new List<long>();
        var owners = new List<int>();
        for (int i = 0; i < n; i++)
            for (long s = 0; s < pairs[i].Average.Length; s += AverageChunk) { starts.Add(s); owners.Add(i); }
        int chunks = starts.Count;
        var bytes = new byte[24 * n + 8 * chunks + 4 * chunks];
        for (int i = 0; i < n; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(8 * i), P(pairs[i].Average));
            BitConverter.TryWriteBytes(bytes.AsSpan(8 * (n + i)), P(pairs[i].Current));
            BitConverter.TryWriteBytes(bytes.AsSpan(8 * (2 * n + i)), pairs[i].Average.Length);
        }
        for (int c = 0; c < chunks; c++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(24 * n + 8 * c), starts[c]);
            BitConverter.TryWriteBytes(bytes.AsSpan(24 * n + 8 * chunks + 4 * c), owners[c]);
        }
        var tables = AllocateCore(bytes.Length, DType.UInt8);
        fixed (byte* b = bytes) Check.Cu(CuDriver.cuMemcpyHtoD(((CudaBuffer)tables).Pointer, b, (nuint)bytes.Length));
        _averageTables.Add((k, tables, chunks));
        if (_averageTables.Count > 8)
        {
            _averageTables[0].Tables.Dispose();
            _averageTables.RemoveAt(0);
        }
        return (tables, chunks);
    }

    // ---------------------------------------------------------------- data

    protected override void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels)
    {
        Ctx();
        int c = x.Shape.C;
        if (c > 4) throw new NotSupportedException($"On-device augmentation handles up to 4 channels; got {c}.");
        var scale = new float[4];
        var shift = new float[4];
        for (int ch = 0; ch < c; ch++)
        {
            scale[ch] = 1f / (255f * spec.Std[ch]);   // exactly as the CPU twin computes them
            shift[ch] = -spec.Mean[ch] / spec.Std[ch];
        }
        byte* v = stackalloc byte[512]; void** p = stackalloc void*[32];
        new KernelArgs(v, p).Ptr(P(images)).Ptr(P(sourceLabels)).Ptr(P(indices)).Ptr(P(x)).Ptr(P(labels))
            .I32(x.Shape.N).I32(c).I32(x.Shape.H).I32(x.Shape.W).I32(spec.Pad).I32(spec.Crop ? 1 : 0).I32(spec.Flip ? 1 : 0)
            .I32(spec.Padding == PaddingMode.Reflect ? 1 : 0).I32(epoch).U32((uint)spec.Seed).U32((uint)(spec.Seed >> 32))
            .F32(scale[0]).F32(scale[1]).F32(scale[2]).F32(scale[3]).F32(shift[0]).F32(shift[1]).F32(shift[2]).F32(shift[3])
            .Launch(K("augment.cu", "augment_batch"), Grid(x.Length), Block, "augment_batch");
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Ctx();
        foreach (var t in _averageTables) t.Tables.Dispose();
        _averageTables.Clear();
        _rowStats?.Dispose();
        _convolutions.Dispose();
        foreach (var d in _tensorDescriptors.Values) CudnnApi.cudnnDestroyTensorDescriptor(d);
        _tensorDescriptors.Clear();
        CudnnApi.cudnnDestroy(_cudnn);
        CublasApi.cublasDestroy(_cublas);
        _kernels.Dispose();
        _device.Dispose();
    }
}
