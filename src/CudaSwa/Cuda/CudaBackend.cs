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
public sealed unsafe partial class CudaBackend : Backend
{
    private const uint Block = 256;
    private readonly CudaDevice _device;
    private readonly CuDriver _driver;
    private readonly KernelLibrary _kernels;
    private readonly CudnnApi? _dnn;     // the cuDNN this backend was opened with (null: kernels only)
    private readonly CublasApi? _blas;   // likewise cuBLAS
    private readonly IntPtr _cudnn;
    private readonly IntPtr _cublas;
    private readonly CudnnConvolutions? _convolutions;
    private readonly Dictionary<(int, int, int, int), IntPtr> _tensorDescriptors = new();
    private DeviceBuffer? _rowStats; // per-row loss and correctness of the last softmax cross-entropy
    private bool _disposed;

    private CudaBackend(CudaDevice device, bool allowTf32, ToolkitSelection libraries, string? cacheFolder)
    {
        _device = device;
        _driver = device.Driver;
        AllowTf32 = allowTf32;
        Toolkit = libraries;
        bool vendorLibraries = libraries.Cublas is not null && libraries.Cudnn is not null;
        HasVendorLibraries = vendorLibraries;
        // Whatever is created before a failure is released again: nothing leaks from a half-built backend.
        IntPtr cudnn = IntPtr.Zero, cublas = IntPtr.Zero;
        KernelLibrary? kernels = null;
        CudnnApi? dnn = null;
        CublasApi? blas = null;
        try
        {
            kernels = new KernelLibrary(device, new KernelCompiler(cacheFolder));
            if (vendorLibraries)
            {
                blas = CublasApi.From(libraries.Cublas!.Handle, libraries.Cublas.Path);
                dnn = CudnnApi.From(libraries.Cudnn!.Handle, libraries.Cudnn.Path);
                // cuBLAS first: cuDNN 9's legacy convolutions load cublasLt, which must be the one chosen with it.
                blas.Check(blas.cublasCreate(&cublas));
                blas.Check(blas.cublasSetStream(cublas, IntPtr.Zero));
                blas.Check(blas.cublasSetMathMode(cublas, allowTf32 ? CublasApi.Tf32TensorOpMath : CublasApi.DefaultMath));
                int cublasVersion;
                blas.Check(blas.cublasGetVersion(cublas, &cublasVersion));
                CublasVersion = cublasVersion;
                dnn.Check(dnn.cudnnCreate(&cudnn));
                dnn.Check(dnn.cudnnSetStream(cudnn, IntPtr.Zero));
                CudnnVersion = (long)dnn.cudnnGetVersion();
                _convolutions = new CudnnConvolutions(this, dnn, cudnn, kernels.CacheFolder,
                    $"{new string(device.Name.Where(char.IsLetterOrDigit).ToArray())}-sm{device.ComputeCapability}-cudnn{CudnnVersion}", RaiseNotice);
            }
        }
        catch
        {
            if (cudnn != IntPtr.Zero) dnn!.cudnnDestroy(cudnn);
            if (cublas != IntPtr.Zero) blas!.cublasDestroy(cublas);
            kernels?.Dispose();
            throw;
        }
        _dnn = dnn;
        _blas = blas;
        _kernels = kernels;
        _cudnn = cudnn;
        _cublas = cublas;
    }

    /// <summary>Opens device <paramref name="ordinal"/>; throws with the reason when CUDA is not usable.</summary>
    public static CudaBackend Create(int ordinal = 0, bool allowTf32 = false) => Create(ordinal, allowTf32, driver: null, vendorLibraries: true);

    /// <summary>
    /// Opens a device of <paramref name="driver"/> with cuBLAS and cuDNN from the exact files named
    /// (for this backend only, beside whatever the process chose): the tests' stand-in libraries.
    /// </summary>
    internal static CudaBackend Create(int ordinal, bool allowTf32, CuDriver driver, string cublasFile, string cudnnFile, string? cacheFolder = null) =>
        Open(ordinal, driver, version => ToolkitSelection.ForFiles(version, cublasFile, cudnnFile), allowTf32, cacheFolder);

    /// <summary>
    /// Opens a device of <paramref name="driver"/> (the NVIDIA driver when null). Without vendor
    /// libraries the backend runs only its own kernels (cuDNN and cuBLAS ops throw
    /// <see cref="NotSupportedException"/>): that is how the tests drive it over a host-memory
    /// stand-in driver. <paramref name="cacheFolder"/> replaces the kernel and cuDNN-choice cache folder.
    /// </summary>
    internal static CudaBackend Create(int ordinal, bool allowTf32, CuDriver? driver, bool vendorLibraries, string? cacheFolder = null) =>
        Open(ordinal, driver, version => vendorLibraries ? ToolkitSelection.ForDriver(version) : ToolkitSelection.ForKernels(version), allowTf32, cacheFolder);

    private static CudaBackend Open(int ordinal, CuDriver? driver, Func<int, ToolkitSelection> libraries, bool allowTf32, string? cacheFolder)
    {
        var device = CudaDevice.Open(ordinal, driver); // the driver first: without it nothing else matters
        try
        {
            return new CudaBackend(device, allowTf32, libraries(device.DriverVersion), cacheFolder);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Something a user of this backend should know that is not an error: e.g. that cuDNN supports
    /// none of the preferred deterministic algorithms for a convolution shape and another
    /// deterministic one is used (said once per shape). The CLI prints these.
    /// </summary>
    public event Action<string>? Notice;

    private readonly List<string> _notices = [];

    /// <summary>Every notice raised so far (also for those who subscribed late).</summary>
    public IReadOnlyList<string> Notices => _notices;

    private void RaiseNotice(string message)
    {
        _notices.Add(message);
        Notice?.Invoke(message);
    }

    internal CudaDevice Device => _device;

    /// <inheritdoc/>
    public override (long Free, long Total)? DeviceMemory() => _device.MemoryInfo();
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

    /// <summary>
    /// With <see cref="LaunchBlocking"/>, waits for the work a cuDNN or cuBLAS call queued and names
    /// <paramref name="op"/> when the device failed meanwhile (as kernel launches are named).
    /// </summary>
    private void AfterVendorCall(string op)
    {
        if (!_kernels.LaunchBlocking) return;
        var r = _driver.cuCtxSynchronize();
        if (r != CuResult.Success) throw new CudaException(_driver.Describe(r, $"{op} (its cuDNN/cuBLAS work, run with launch-blocking)"), (int)r);
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

    private void Ctx() => _device.MakeCurrent();

    private static DevicePtr P(Tensor t) => ((CudaBuffer)t.Buffer).Address.Plus(t.Offset * t.DType.SizeInBytes());

    /// <summary>A grid-stride launch: enough blocks to fill the device, never more than the work needs.</summary>
    private uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, (long)_device.Multiprocessors * 32);

    private static uint GridExact(long threads) => (uint)((threads + Block - 1) / Block);

    private void Launch<TArgs>(KernelSpec<TArgs> kernel, uint grid, in TArgs args) where TArgs : unmanaged => _kernels.Launch(kernel, grid, Block, args);

    private NotSupportedException NoVendor(string op, string library) =>
        new($"{op} needs {library}, which this CUDA backend was created without (kernels only, as over the test stand-in driver).");

    private IntPtr Cudnn(string op) => HasVendorLibraries ? _cudnn : throw NoVendor(op, "cuDNN");

    /// <summary>The cuDNN table (only reached after <see cref="Cudnn"/> confirmed there is one).</summary>
    private CudnnApi Dnn => _dnn!;

    private IntPtr Descriptor(int n, int c, int h, int w)
    {
        if (_tensorDescriptors.TryGetValue((n, c, h, w), out var d)) return d;
        Dnn.Check(Dnn.cudnnCreateTensorDescriptor(&d));
        try { Dnn.Check(Dnn.cudnnSetTensor4dDescriptor(d, CudnnApi.TensorNchw, CudnnApi.DataFloat, n, c, h, w)); }
        catch
        {
            Dnn.cudnnDestroyTensorDescriptor(d);
            throw;
        }
        _tensorDescriptors[(n, c, h, w)] = d;
        return d;
    }

    private IntPtr Nchw(Tensor t) => Descriptor(t.Shape.N, t.Shape.C, t.Shape.H, t.Shape.W);

    /// <inheritdoc/>
    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        using (_device.Activate())
        {
            _rowStats?.Dispose();
            _convolutions?.Dispose();
            foreach (var d in _tensorDescriptors.Values) _dnn!.cudnnDestroyTensorDescriptor(d);
            _tensorDescriptors.Clear();
            if (_cudnn != IntPtr.Zero) _dnn!.cudnnDestroy(_cudnn);
            if (_cublas != IntPtr.Zero) _blas!.cublasDestroy(_cublas);
            _kernels.Dispose();
        }
        _device.Dispose();
    }

    /// <summary>
    /// Every kernel of kernels/*.cu, each declared once, in the partial file of this class that
    /// launches it: file, extern "C" name, and an argument struct whose fields are the kernel's
    /// parameters in order (same names as in the .cu file), declared next to it. A launch passes
    /// that struct, so a missing, extra or mistyped argument is a compile error. The CPU twin of a
    /// kernel is in the CpuBackend partial file of the same concern; its tests are the emulated
    /// kernel tests of its .cu file (the same source run on the CPU) and the backend's op tests.
    /// </summary>
    internal static partial class Kernels
    {
        private static KernelSpec[]? s_all;

        /// <summary>
        /// The whole table, in declaration order (by <see cref="KernelSpec.Id"/>): every public static
        /// KernelSpec of this class. Gathered on first use — not by a field initializer, which could run
        /// before those of the partial files declared after this one.
        /// </summary>
        public static IReadOnlyList<KernelSpec> All => s_all ??=
        [
            .. typeof(Kernels).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
                .Where(f => typeof(KernelSpec).IsAssignableFrom(f.FieldType))
                .Select(f => (KernelSpec)f.GetValue(null)!)
                .OrderBy(k => k.Id),
        ];
    }
}
