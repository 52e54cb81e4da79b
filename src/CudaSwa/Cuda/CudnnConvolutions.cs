using System.Globalization;
using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>
/// cuDNN convolution plans, one per geometry: descriptors plus the forward, backward-data and
/// backward-filter algorithms. Preferred are algorithms that are deterministic AND numerically
/// stable (exact mode): forward implicit GEMM, precomputed implicit GEMM or GEMM; backward data
/// and backward filter ALGO_1 — no FFT or Winograd, whose rounding differs from a direct sum, and
/// no ALGO_0/ALGO_3, which add with atomics. Where cuDNN supports none of the preferred ones for a
/// shape, another deterministic algorithm is taken and a notice says which (never a
/// non-deterministic one: that is an error naming what was offered). The fastest allowed one is
/// found once per shape with cudnnFind*Algorithm, and the math type cuDNN reported with it is set
/// on that direction's convolution descriptor (as PyTorch does; each direction has its own
/// descriptor). Choices are cached in memory and on disk next to the kernel cache, so the next
/// process on the same GPU and cuDNN makes the same choice without searching; a cached choice
/// cuDNN rejects is searched for again. One shared workspace, grown to the largest need at network
/// build time. TF32 is off unless the backend allows it (exact float32).
/// </summary>
internal sealed unsafe class CudnnConvolutions : IDisposable
{
    private const long WorkspaceLimit = 1L << 30;
    private const string FileHeader = "# cudaswa cuDNN algorithm choices v3: shape fwd:math bwd-data:math bwd-filter:math (deterministic only)";

    private static readonly int[] StableForward = [0, 1, 2];      // IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM
    private static readonly int[] StableBackwardData = [1];       // ALGO_1
    private static readonly int[] StableBackwardFilter = [1];     // ALGO_1

    // Deterministic by cuDNN's documentation: every forward algorithm; backward data all but ALGO_0;
    // backward filter all but ALGO_0 and ALGO_3.
    private static readonly int[] DeterministicForward = [0, 1, 2, 3, 4, 5, 6, 7];
    private static readonly int[] DeterministicBackwardData = [1, 2, 3, 4, 5];
    private static readonly int[] DeterministicBackwardFilter = [1, 2, 4, 5, 6];

    private static readonly string[] ForwardNames = ["IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"];
    private static readonly string[] BackwardDataNames = ["ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"];
    private static readonly string[] BackwardFilterNames = ["ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"];
    private static readonly string[] MathNames = ["DEFAULT_MATH", "TENSOR_OP_MATH", "TENSOR_OP_MATH_ALLOW_CONVERSION", "FMA_MATH"];

    private enum Direction { Forward, BackwardData, BackwardFilter }

    private sealed record Policy(string Name, int[] Stable, int[] Deterministic, string[] Names);

    private static readonly Policy[] Policies =
    [
        new("forward", StableForward, DeterministicForward, ForwardNames),
        new("backward data", StableBackwardData, DeterministicBackwardData, BackwardDataNames),
        new("backward filter", StableBackwardFilter, DeterministicBackwardFilter, BackwardFilterNames),
    ];

    private readonly CudaBackend _backend;
    private readonly CudnnApi _dnn;
    private readonly IntPtr _cudnn;
    private readonly Action<string> _notice;
    private readonly Dictionary<ConvGeometry, Plan> _plans = new();
    private readonly Dictionary<string, Algorithm[]> _diskChoices = new(StringComparer.Ordinal);

    /// <summary>One direction's algorithm and the math type it runs with (set on that direction's descriptor).</summary>
    internal readonly record struct Algorithm(int Algo, int MathType);

    internal sealed class Plan
    {
        public IntPtr X, W, Y;
        /// <summary>One convolution descriptor per direction: each carries its algorithm's math type.</summary>
        public IntPtr[] Conv = new IntPtr[3];
        public Algorithm[] Chosen = new Algorithm[3];
        /// <summary>Per direction: why a non-preferred algorithm was taken, or null.</summary>
        public string?[] Fallback = new string?[3];
        public nuint WorkspaceBytes;
        public bool FromDisk;
        public ConvGeometry Geometry;
        public int Fwd => Chosen[0].Algo;
        public int BwdData => Chosen[1].Algo;
        public int BwdFilter => Chosen[2].Algo;
        public IntPtr ConvForward => Conv[0];
        public IntPtr ConvBackwardData => Conv[1];
        public IntPtr ConvBackwardFilter => Conv[2];
    }

    /// <summary>One convolution shape and the algorithms chosen for it (for `cudaswa info` and bench JSON); <paramref name="Note"/> names any fallback.</summary>
    public sealed record Choice(string Shape, string Forward, string BackwardData, string BackwardFilter, long WorkspaceBytes, bool FromCache, string Note);

    public CudnnConvolutions(CudaBackend backend, CudnnApi dnn, IntPtr cudnn, string cacheFolder, string deviceKey, Action<string> notice)
    {
        _backend = backend;
        _dnn = dnn;
        _cudnn = cudnn;
        _notice = notice;
        ChoicesFile = Path.Combine(cacheFolder, $"cudnn-algorithms-{deviceKey}.txt");
        try
        {
            if (File.Exists(ChoicesFile))
                foreach (var line in File.ReadAllLines(ChoicesFile))
                {
                    // Lines that do not parse, or name an algorithm that is not deterministic (a stale
                    // entry from another policy or version), are ignored: that shape is searched again.
                    var parts = line.Split(' ');
                    if (parts.Length != 4 || line.StartsWith('#')) continue;
                    var chosen = new Algorithm[3];
                    bool ok = true;
                    for (int d = 0; d < 3 && ok; d++)
                    {
                        var pair = parts[d + 1].Split(':');
                        ok = pair.Length == 2 && int.TryParse(pair[0], NumberStyles.None, CultureInfo.InvariantCulture, out int algo)
                             && int.TryParse(pair[1], NumberStyles.None, CultureInfo.InvariantCulture, out int math)
                             && Policies[d].Deterministic.Contains(algo) && math is >= 0 and < 4;
                        if (ok) chosen[d] = new Algorithm(int.Parse(pair[0], CultureInfo.InvariantCulture), int.Parse(pair[1], CultureInfo.InvariantCulture));
                    }
                    if (ok) _diskChoices[parts[0]] = chosen;
                }
        }
        catch (IOException) { }
    }

    public string ChoicesFile { get; }

    public DeviceBuffer? Workspace { get; private set; }

    /// <summary>Every shape planned so far, with its algorithms.</summary>
    public IReadOnlyList<Choice> Choices =>
        _plans.Values.Select(p => new Choice(p.Geometry.ToString(), Describe(p, 0), Describe(p, 1), Describe(p, 2),
            (long)p.WorkspaceBytes, p.FromDisk, string.Join("; ", p.Fallback.Where(f => f is not null)))).ToList();

    /// <summary>"NAME" for the usual math types of exact mode, "NAME (MATH)" otherwise.</summary>
    private string Describe(Plan p, int d)
    {
        var a = p.Chosen[d];
        string name = Policies[d].Names[a.Algo];
        bool usual = _backend.AllowTf32 ? a.MathType is CudnnApi.TensorOpMath : a.MathType is CudnnApi.FmaMath;
        return usual ? name : $"{name} ({MathName(a.MathType)})";
    }

    private static string MathName(int m) => m >= 0 && m < MathNames.Length ? MathNames[m] : m.ToString(CultureInfo.InvariantCulture);

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
    /// again and false asks the caller to retry once; any other failure throws with the algorithms
    /// named. cuDNN 9's sub-codes (e.g. 3002 NOT_SUPPORTED_SHAPE) count as their category.
    /// </summary>
    public bool Completed(Plan plan, CudnnStatus status, int attempt, string what)
    {
        if (status == CudnnStatus.Success) return true;
        if (attempt == 0 && plan.FromDisk && CudnnApi.Category(status) is CudnnStatus.NotSupported or CudnnStatus.BadParam)
        {
            _diskChoices.Remove(Key(plan.Geometry));
            Search(plan, plan.Geometry);
            plan.FromDisk = false;
            EnsureWorkspace(plan);
            return false;
        }
        _dnn.Check(status, $"{what} ({plan.Geometry}; {Describe(plan, 0)} / {Describe(plan, 1)} / {Describe(plan, 2)})");
        return true;
    }

    private string Key(ConvGeometry g) => string.Create(CultureInfo.InvariantCulture,
        $"{g.N}x{g.C}x{g.H}x{g.W}-k{g.K}x{g.R}x{g.S}-s{g.Stride}-p{g.Padding}-tf32{(_backend.AllowTf32 ? 1 : 0)}");

    private Plan Create(ConvGeometry g)
    {
        var p = new Plan { Geometry = g };
        try
        {
            IntPtr x, w, y;
            _dnn.Check(_dnn.cudnnCreateTensorDescriptor(&x));
            p.X = x;
            _dnn.Check(_dnn.cudnnSetTensor4dDescriptor(x, CudnnApi.TensorNchw, CudnnApi.DataFloat, g.N, g.C, g.H, g.W));
            _dnn.Check(_dnn.cudnnCreateFilterDescriptor(&w));
            p.W = w;
            _dnn.Check(_dnn.cudnnSetFilter4dDescriptor(w, CudnnApi.DataFloat, CudnnApi.TensorNchw, g.K, g.C, g.R, g.S));
            _dnn.Check(_dnn.cudnnCreateTensorDescriptor(&y));
            p.Y = y;
            _dnn.Check(_dnn.cudnnSetTensor4dDescriptor(y, CudnnApi.TensorNchw, CudnnApi.DataFloat, g.N, g.K, g.P, g.Q));
            for (int d = 0; d < 3; d++)
            {
                IntPtr conv;
                _dnn.Check(_dnn.cudnnCreateConvolutionDescriptor(&conv));
                p.Conv[d] = conv;
                _dnn.Check(_dnn.cudnnSetConvolution2dDescriptor(conv, g.Padding, g.Padding, g.Stride, g.Stride, 1, 1, CudnnApi.CrossCorrelation, CudnnApi.DataFloat));
                // What the search may use: tensor ops (TF32) only when allowed.
                _dnn.Check(_dnn.cudnnSetConvolutionMathType(conv, SearchMath));
            }

            if (_diskChoices.TryGetValue(Key(g), out var choice) && TryApply(p, choice))
                p.FromDisk = true;
            else Search(p, g);
            return p;
        }
        catch
        {
            Destroy(p);
            throw;
        }
    }

    private int SearchMath => _backend.AllowTf32 ? CudnnApi.TensorOpMath : CudnnApi.FmaMath;

    /// <summary>
    /// Sets each direction's math type and the plan's workspace for a choice; false when cuDNN no
    /// longer accepts one of its algorithms or math types (the descriptors are then left for a new search).
    /// </summary>
    private bool TryApply(Plan p, Algorithm[] c)
    {
        for (int d = 0; d < 3; d++)
            if (_dnn.cudnnSetConvolutionMathType(p.Conv[d], c[d].MathType) != CudnnStatus.Success) return Reset(p);
        nuint a, b, f;
        if (_dnn.cudnnGetConvolutionForwardWorkspaceSize(_cudnn, p.X, p.W, p.ConvForward, p.Y, c[0].Algo, &a) != CudnnStatus.Success) return Reset(p);
        if (_dnn.cudnnGetConvolutionBackwardDataWorkspaceSize(_cudnn, p.W, p.Y, p.ConvBackwardData, p.X, c[1].Algo, &b) != CudnnStatus.Success) return Reset(p);
        if (_dnn.cudnnGetConvolutionBackwardFilterWorkspaceSize(_cudnn, p.X, p.Y, p.ConvBackwardFilter, p.W, c[2].Algo, &f) != CudnnStatus.Success) return Reset(p);
        p.Chosen = c;
        p.WorkspaceBytes = Math.Max(a, Math.Max(b, f));
        return true;
    }

    private bool Reset(Plan p)
    {
        for (int d = 0; d < 3; d++) _dnn.cudnnSetConvolutionMathType(p.Conv[d], SearchMath);
        return false;
    }

    private void Search(Plan p, ConvGeometry g)
    {
        const int n = 16;
        var perf = stackalloc CudnnApi.AlgoPerf[n];
        var chosen = new Algorithm[3];
        for (int d = 0; d < 3; d++)
        {
            // Each direction searches under the search math type, then runs with the math type reported for its choice.
            _dnn.Check(_dnn.cudnnSetConvolutionMathType(p.Conv[d], SearchMath));
            int returned;
            var status = (Direction)d switch
            {
                Direction.Forward => _dnn.cudnnFindConvolutionForwardAlgorithm(_cudnn, p.X, p.W, p.ConvForward, p.Y, n, &returned, perf),
                Direction.BackwardData => _dnn.cudnnFindConvolutionBackwardDataAlgorithm(_cudnn, p.W, p.Y, p.ConvBackwardData, p.X, n, &returned, perf),
                _ => _dnn.cudnnFindConvolutionBackwardFilterAlgorithm(_cudnn, p.X, p.Y, p.ConvBackwardFilter, p.W, n, &returned, perf),
            };
            _dnn.Check(status, $"cudnnFindConvolution{(Direction)d}Algorithm ({g})");
            (chosen[d], p.Fallback[d]) = Pick(perf, returned, Policies[d], g);
            if (p.Fallback[d] is { } note) _notice(note);
        }
        if (!TryApply(p, chosen))
            throw new CudaException($"cuDNN found algorithms for convolution {g} but then refused their math type or workspace query.");
        _diskChoices[Key(g)] = chosen;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(ChoicesFile)!);
            bool current = File.Exists(ChoicesFile) && File.ReadLines(ChoicesFile).FirstOrDefault() == FileHeader;
            if (!current) File.WriteAllText(ChoicesFile, FileHeader + "\n"); // an older format's entries are searched again anyway
            File.AppendAllText(ChoicesFile, string.Create(CultureInfo.InvariantCulture,
                $"{Key(g)} {chosen[0].Algo}:{chosen[0].MathType} {chosen[1].Algo}:{chosen[1].MathType} {chosen[2].Algo}:{chosen[2].MathType}\n"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Results come sorted by time: the first preferred (deterministic and stable) one that worked and
    /// fits; failing that the first other deterministic one, with a notice saying so.
    /// </summary>
    private static (Algorithm Choice, string? Fallback) Pick(CudnnApi.AlgoPerf* perf, int count, Policy policy, ConvGeometry g)
    {
        bool Usable(int i) => perf[i].Status == CudnnStatus.Success && perf[i].Determinism == CudnnApi.Deterministic && (long)perf[i].Memory <= WorkspaceLimit;
        for (int i = 0; i < count; i++)
            if (Usable(i) && policy.Stable.Contains(perf[i].Algo))
                return (new Algorithm(perf[i].Algo, perf[i].MathType), null);
        for (int i = 0; i < count; i++)
            if (Usable(i) && policy.Deterministic.Contains(perf[i].Algo))
                return (new Algorithm(perf[i].Algo, perf[i].MathType),
                    $"cuDNN supports none of the preferred {policy.Name} algorithms ({string.Join(", ", policy.Stable.Select(a => policy.Names[a]))}) " +
                    $"for convolution {g}: using {Name(policy, perf[i].Algo)} (deterministic; its rounding differs from a direct sum)");
        var offered = Enumerable.Range(0, count).Select(i =>
            $"{Name(policy, perf[i].Algo)} ({perf[i].Status}, {(perf[i].Determinism == CudnnApi.Deterministic ? "deterministic" : "non-deterministic")}, {(long)perf[i].Memory} B)");
        throw new CudaException($"cuDNN offers no deterministic {policy.Name} algorithm for convolution {g} " +
            $"(preferred: {string.Join(", ", policy.Stable.Select(a => policy.Names[a]))}; offered: {string.Join("; ", offered)}).");
    }

    private static string Name(Policy policy, int algo) =>
        algo >= 0 && algo < policy.Names.Length ? policy.Names[algo] : algo.ToString(CultureInfo.InvariantCulture);

    private void Destroy(Plan p)
    {
        if (p.X != IntPtr.Zero) _dnn.cudnnDestroyTensorDescriptor(p.X);
        if (p.W != IntPtr.Zero) _dnn.cudnnDestroyFilterDescriptor(p.W);
        if (p.Y != IntPtr.Zero) _dnn.cudnnDestroyTensorDescriptor(p.Y);
        foreach (var c in p.Conv)
            if (c != IntPtr.Zero) _dnn.cudnnDestroyConvolutionDescriptor(c);
        p.X = p.W = p.Y = IntPtr.Zero;
        p.Conv = new IntPtr[3];
    }

    public void Dispose()
    {
        foreach (var p in _plans.Values) Destroy(p);
        _plans.Clear();
        Workspace?.Dispose();
    }
}
