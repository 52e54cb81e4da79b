using System.Globalization;
using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>
/// cuDNN convolution plans, one per geometry: descriptors plus the forward, backward-data and
/// backward-filter algorithms. Only algorithms that are deterministic AND numerically stable are
/// used (exact mode): forward implicit GEMM, precomputed implicit GEMM or GEMM; backward data and
/// backward filter ALGO_1 — no FFT or Winograd, whose rounding differs from a direct sum, and no
/// ALGO_0/ALGO_3, which add with atomics. The fastest allowed one is found once per shape with
/// cudnnFind*Algorithm and cached in memory and on disk next to the kernel cache, so the next
/// process on the same GPU and cuDNN makes the same choice without searching. When cuDNN offers
/// none of them the error says so (never a silent fallback); a cached choice cuDNN rejects is
/// searched for again. One shared workspace, grown to the largest need at network build time.
/// TF32 is off unless the backend allows it (exact float32).
/// </summary>
internal sealed unsafe class CudnnConvolutions : IDisposable
{
    private const long WorkspaceLimit = 1L << 30;
    private const string FileHeader = "# cudaswa cuDNN algorithm choices v2: shape fwd bwd-data bwd-filter (exact: deterministic and stable only)";

    private static readonly int[] StableForward = [0, 1, 2];      // IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM
    private static readonly int[] StableBackwardData = [1];       // ALGO_1
    private static readonly int[] StableBackwardFilter = [1];     // ALGO_1

    private static readonly string[] ForwardNames = ["IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"];
    private static readonly string[] BackwardDataNames = ["ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"];
    private static readonly string[] BackwardFilterNames = ["ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"];

    private readonly CudaBackend _backend;
    private readonly IntPtr _cudnn;
    private readonly Dictionary<ConvGeometry, Plan> _plans = new();
    private readonly Dictionary<string, (int Fwd, int BwdData, int BwdFilter)> _diskChoices = new(StringComparer.Ordinal);

    internal sealed class Plan
    {
        public IntPtr X, W, Y, Conv;
        public int Fwd, BwdData, BwdFilter;
        public nuint WorkspaceBytes;
        public bool FromDisk;
        public ConvGeometry Geometry;
    }

    /// <summary>One convolution shape and the algorithms chosen for it (for `cudaswa info` and bench JSON).</summary>
    public sealed record Choice(string Shape, string Forward, string BackwardData, string BackwardFilter, long WorkspaceBytes, bool FromCache);

    public CudnnConvolutions(CudaBackend backend, IntPtr cudnn, string cacheFolder, string deviceKey)
    {
        _backend = backend;
        _cudnn = cudnn;
        ChoicesFile = Path.Combine(cacheFolder, $"cudnn-algorithms-{deviceKey}.txt");
        try
        {
            if (File.Exists(ChoicesFile))
                foreach (var line in File.ReadAllLines(ChoicesFile))
                {
                    var parts = line.Split(' ');
                    // Lines that do not parse, or name an algorithm outside the allowed sets (a stale
                    // entry from another policy), are ignored: that shape is searched again.
                    if (parts.Length == 4 && int.TryParse(parts[1], out int f) && int.TryParse(parts[2], out int d) && int.TryParse(parts[3], out int w)
                        && StableForward.Contains(f) && StableBackwardData.Contains(d) && StableBackwardFilter.Contains(w))
                        _diskChoices[parts[0]] = (f, d, w);
                }
        }
        catch (IOException) { }
    }

    public string ChoicesFile { get; }

    public DeviceBuffer? Workspace { get; private set; }

    /// <summary>Every shape planned so far, with its algorithms.</summary>
    public IReadOnlyList<Choice> Choices =>
        _plans.Values.Select(p => new Choice(p.Geometry.ToString(), ForwardNames[p.Fwd], BackwardDataNames[p.BwdData], BackwardFilterNames[p.BwdFilter],
            (long)p.WorkspaceBytes, p.FromDisk)).ToList();

    public Plan Get(ConvGeometry g)
    {
        if (_plans.TryGetValue(g, out var plan)) return plan;
        plan = Create(g);
        _plans[g] = plan;
        EnsureWorkspace(plan);
        return plan;
    }

    private void EnsureWorkspace(Plan plan)
    {
        if (Workspace is null || (long)plan.WorkspaceBytes > Workspace.Length)
        {
            Workspace?.Dispose();
            Workspace = null;
            Workspace = _backend.Allocate(Math.Max(256, (long)plan.WorkspaceBytes), DType.UInt8);
        }
    }

    /// <summary>
    /// The outcome of one convolution call: true when it succeeded. If cuDNN rejected an algorithm
    /// that came from the disk cache (another cuDNN build, a changed driver), the shape is searched
    /// again and false asks the caller to retry once; any other failure throws with the algorithms named.
    /// </summary>
    public bool Completed(Plan plan, CudnnStatus status, int attempt, string what)
    {
        if (status == CudnnStatus.Success) return true;
        if (attempt == 0 && plan.FromDisk && status is CudnnStatus.NotSupported or CudnnStatus.BadParam)
        {
            _diskChoices.Remove(Key(plan.Geometry));
            Search(plan, plan.Geometry);
            plan.FromDisk = false;
            EnsureWorkspace(plan);
            return false;
        }
        Check.Cudnn(status, $"{what} ({plan.Geometry}; {ForwardNames[plan.Fwd]} / {BackwardDataNames[plan.BwdData]} / {BackwardFilterNames[plan.BwdFilter]})");
        return true;
    }

    private string Key(ConvGeometry g) => string.Create(CultureInfo.InvariantCulture,
        $"{g.N}x{g.C}x{g.H}x{g.W}-k{g.K}x{g.R}x{g.S}-s{g.Stride}-p{g.Padding}-tf32{(_backend.AllowTf32 ? 1 : 0)}");

    private Plan Create(ConvGeometry g)
    {
        var p = new Plan { Geometry = g };
        try
        {
            IntPtr x, w, y, conv;
            Check.Cudnn(CudnnApi.cudnnCreateTensorDescriptor(&x));
            p.X = x;
            Check.Cudnn(CudnnApi.cudnnSetTensor4dDescriptor(x, CudnnApi.TensorNchw, CudnnApi.DataFloat, g.N, g.C, g.H, g.W));
            Check.Cudnn(CudnnApi.cudnnCreateFilterDescriptor(&w));
            p.W = w;
            Check.Cudnn(CudnnApi.cudnnSetFilter4dDescriptor(w, CudnnApi.DataFloat, CudnnApi.TensorNchw, g.K, g.C, g.R, g.S));
            Check.Cudnn(CudnnApi.cudnnCreateTensorDescriptor(&y));
            p.Y = y;
            Check.Cudnn(CudnnApi.cudnnSetTensor4dDescriptor(y, CudnnApi.TensorNchw, CudnnApi.DataFloat, g.N, g.K, g.P, g.Q));
            Check.Cudnn(CudnnApi.cudnnCreateConvolutionDescriptor(&conv));
            p.Conv = conv;
            Check.Cudnn(CudnnApi.cudnnSetConvolution2dDescriptor(conv, g.Padding, g.Padding, g.Stride, g.Stride, 1, 1, CudnnApi.CrossCorrelation, CudnnApi.DataFloat));
            Check.Cudnn(CudnnApi.cudnnSetConvolutionMathType(conv, _backend.AllowTf32 ? CudnnApi.TensorOpMath : CudnnApi.FmaMath));

            if (_diskChoices.TryGetValue(Key(g), out var choice) && TryWorkspace(p, choice))
            {
                (p.Fwd, p.BwdData, p.BwdFilter) = choice;
                p.FromDisk = true;
            }
            else Search(p, g);
            return p;
        }
        catch
        {
            Destroy(p);
            throw;
        }
    }

    /// <summary>Sets the plan's workspace for a cached choice; false when cuDNN no longer accepts one of its algorithms.</summary>
    private bool TryWorkspace(Plan p, (int Fwd, int BwdData, int BwdFilter) c)
    {
        nuint a, b, d;
        if (CudnnApi.cudnnGetConvolutionForwardWorkspaceSize(_cudnn, p.X, p.W, p.Conv, p.Y, c.Fwd, &a) != CudnnStatus.Success) return false;
        if (CudnnApi.cudnnGetConvolutionBackwardDataWorkspaceSize(_cudnn, p.W, p.Y, p.Conv, p.X, c.BwdData, &b) != CudnnStatus.Success) return false;
        if (CudnnApi.cudnnGetConvolutionBackwardFilterWorkspaceSize(_cudnn, p.X, p.Y, p.Conv, p.W, c.BwdFilter, &d) != CudnnStatus.Success) return false;
        p.WorkspaceBytes = Math.Max(a, Math.Max(b, d));
        return true;
    }

    private void Search(Plan p, ConvGeometry g)
    {
        const int n = 16;
        var perf = stackalloc CudnnApi.AlgoPerf[n];
        int returned;
        Check.Cudnn(CudnnApi.cudnnFindConvolutionForwardAlgorithm(_cudnn, p.X, p.W, p.Conv, p.Y, n, &returned, perf));
        p.Fwd = Pick(perf, returned, StableForward, ForwardNames, "forward", g);
        Check.Cudnn(CudnnApi.cudnnFindConvolutionBackwardDataAlgorithm(_cudnn, p.W, p.Y, p.Conv, p.X, n, &returned, perf));
        p.BwdData = Pick(perf, returned, StableBackwardData, BackwardDataNames, "backward data", g);
        Check.Cudnn(CudnnApi.cudnnFindConvolutionBackwardFilterAlgorithm(_cudnn, p.X, p.Y, p.Conv, p.W, n, &returned, perf));
        p.BwdFilter = Pick(perf, returned, StableBackwardFilter, BackwardFilterNames, "backward filter", g);
        if (!TryWorkspace(p, (p.Fwd, p.BwdData, p.BwdFilter)))
            throw new CudaException($"cuDNN found algorithms for convolution {g} but then refused their workspace query.");
        _diskChoices[Key(g)] = (p.Fwd, p.BwdData, p.BwdFilter);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(ChoicesFile)!);
            if (!File.Exists(ChoicesFile)) File.AppendAllText(ChoicesFile, FileHeader + "\n");
            File.AppendAllText(ChoicesFile, $"{Key(g)} {p.Fwd} {p.BwdData} {p.BwdFilter}\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private static int Pick(CudnnApi.AlgoPerf* perf, int count, int[] allowed, string[] names, string what, ConvGeometry g)
    {
        // Results come sorted by time; take the first allowed one that worked, is deterministic and fits.
        for (int i = 0; i < count; i++)
            if (perf[i].Status == CudnnStatus.Success && perf[i].Determinism == 1 && (long)perf[i].Memory <= WorkspaceLimit && allowed.Contains(perf[i].Algo))
                return perf[i].Algo;
        var offered = Enumerable.Range(0, count).Select(i =>
            $"{(perf[i].Algo >= 0 && perf[i].Algo < names.Length ? names[perf[i].Algo] : perf[i].Algo.ToString(CultureInfo.InvariantCulture))}" +
            $" ({perf[i].Status}, {(perf[i].Determinism == 1 ? "deterministic" : "non-deterministic")}, {(long)perf[i].Memory} B)");
        throw new CudaException($"cuDNN offers no deterministic, numerically stable {what} algorithm for convolution {g} " +
            $"(allowed: {string.Join(", ", allowed.Select(a => names[a]))}; offered: {string.Join("; ", offered)}).");
    }

    private static void Destroy(Plan p)
    {
        if (p.X != IntPtr.Zero) CudnnApi.cudnnDestroyTensorDescriptor(p.X);
        if (p.W != IntPtr.Zero) CudnnApi.cudnnDestroyFilterDescriptor(p.W);
        if (p.Y != IntPtr.Zero) CudnnApi.cudnnDestroyTensorDescriptor(p.Y);
        if (p.Conv != IntPtr.Zero) CudnnApi.cudnnDestroyConvolutionDescriptor(p.Conv);
        p.X = p.W = p.Y = p.Conv = IntPtr.Zero;
    }

    public void Dispose()
    {
        foreach (var p in _plans.Values) Destroy(p);
        _plans.Clear();
        Workspace?.Dispose();
    }
}
