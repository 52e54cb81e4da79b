using System.Globalization;
using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>
/// cuDNN convolution plans, one per geometry: descriptors plus the forward, backward-data and
/// backward-filter algorithms, found once with cudnnFind*Algorithm (fastest DETERMINISTIC
/// algorithm within the workspace limit, so runs and resumed runs reproduce exactly) and cached
/// — in memory and on disk next to the kernel cache, so the next process on the same GPU and
/// cuDNN makes the same choice without searching. One shared workspace, grown to the largest
/// need at network build time. TF32 is off unless the backend allows it (exact float32).
/// </summary>
internal sealed unsafe class CudnnConvolutions : IDisposable
{
    private const long WorkspaceLimit = 1L << 30;
    private readonly CudaBackend _backend;
    private readonly IntPtr _cudnn;
    private readonly Dictionary<ConvGeometry, Plan> _plans = new();
    private readonly Dictionary<string, (int Fwd, int BwdData, int BwdFilter)> _diskChoices = new(StringComparer.Ordinal);
    private readonly string _choicesFile;

    internal sealed class Plan
    {
        public IntPtr X, W, Y, Conv;
        public int Fwd, BwdData, BwdFilter;
        public nuint WorkspaceBytes;
    }

    public CudnnConvolutions(CudaBackend backend, IntPtr cudnn, string cacheFolder, string deviceKey)
    {
        _backend = backend;
        _cudnn = cudnn;
        _choicesFile = Path.Combine(cacheFolder, $"cudnn-algorithms-{deviceKey}.txt");
        try
        {
            if (File.Exists(_choicesFile))
                foreach (var line in File.ReadAllLines(_choicesFile))
                {
                    var parts = line.Split(' ');
                    if (parts.Length == 4 && int.TryParse(parts[1], out int f) && int.TryParse(parts[2], out int d) && int.TryParse(parts[3], out int w))
                        _diskChoices[parts[0]] = (f, d, w);
                }
        }
        catch (IOException) { }
    }

    public DeviceBuffer? Workspace { get; private set; }

    public Plan Get(ConvGeometry g)
    {
        if (_plans.TryGetValue(g, out var plan)) return plan;
        plan = Create(g);
        _plans[g] = plan;
        if (Workspace is null || (long)plan.WorkspaceBytes > Workspace.Length)
        {
            Workspace?.Dispose();
            Workspace = _backend.Allocate(Math.Max(256, (long)plan.WorkspaceBytes), DType.UInt8);
        }
        return plan;
    }

    private string Key(ConvGeometry g) => string.Create(CultureInfo.InvariantCulture,
        $"{g.N}x{g.C}x{g.H}x{g.W}-k{g.K}x{g.R}x{g.S}-s{g.Stride}-p{g.Padding}-tf32{(_backend.AllowTf32 ? 1 : 0)}");

    private Plan Create(ConvGeometry g)
    {
        var p = new Plan();
        IntPtr x, w, y, conv;
        Check.Cudnn(CudnnApi.cudnnCreateTensorDescriptor(&x));
        Check.Cudnn(CudnnApi.cudnnSetTensor4dDescriptor(x, CudnnApi.TensorNchw, CudnnApi.DataFloat, g.N, g.C, g.H, g.W));
        Check.Cudnn(CudnnApi.cudnnCreateFilterDescriptor(&w));
        Check.Cudnn(CudnnApi.cudnnSetFilter4dDescriptor(w, CudnnApi.DataFloat, CudnnApi.TensorNchw, g.K, g.C, g.R, g.S));
        Check.Cudnn(CudnnApi.cudnnCreateTensorDescriptor(&y));
        Check.Cudnn(CudnnApi.cudnnSetTensor4dDescriptor(y, CudnnApi.TensorNchw, CudnnApi.DataFloat, g.N, g.K, g.P, g.Q));
        Check.Cudnn(CudnnApi.cudnnCreateConvolutionDescriptor(&conv));
        Check.Cudnn(CudnnApi.cudnnSetConvolution2dDescriptor(conv, g.Padding, g.Padding, g.Stride, g.Stride, 1, 1, CudnnApi.CrossCorrelation, CudnnApi.DataFloat));
        Check.Cudnn(CudnnApi.cudnnSetConvolutionMathType(conv, _backend.AllowTf32 ? CudnnApi.TensorOpMath : CudnnApi.FmaMath));
        p.X = x; p.W = w; p.Y = y; p.Conv = conv;

        string key = Key(g);
        if (_diskChoices.TryGetValue(key, out var choice))
        {
            (p.Fwd, p.BwdData, p.BwdFilter) = choice;
        }
        else
        {
            const int n = 16;
            var perf = stackalloc CudnnApi.AlgoPerf[n];
            int returned;
            Check.Cudnn(CudnnApi.cudnnFindConvolutionForwardAlgorithm(_cudnn, x, w, conv, y, n, &returned, perf));
            p.Fwd = Pick(perf, returned, "forward", g);
            Check.Cudnn(CudnnApi.cudnnFindConvolutionBackwardDataAlgorithm(_cudnn, w, y, conv, x, n, &returned, perf));
            p.BwdData = Pick(perf, returned, "backward data", g);
            Check.Cudnn(CudnnApi.cudnnFindConvolutionBackwardFilterAlgorithm(_cudnn, x, y, conv, w, n, &returned, perf));
            p.BwdFilter = Pick(perf, returned, "backward filter", g);
            _diskChoices[key] = (p.Fwd, p.BwdData, p.BwdFilter);
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(_choicesFile)!);
                File.AppendAllText(_choicesFile, $"{key} {p.Fwd} {p.BwdData} {p.BwdFilter}\n");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        nuint a, b, c;
        Check.Cudnn(CudnnApi.cudnnGetConvolutionForwardWorkspaceSize(_cudnn, x, w, conv, y, p.Fwd, &a));
        Check.Cudnn(CudnnApi.cudnnGetConvolutionBackwardDataWorkspaceSize(_cudnn, w, y, conv, x, p.BwdData, &b));
        Check.Cudnn(CudnnApi.cudnnGetConvolutionBackwardFilterWorkspaceSize(_cudnn, x, y, conv, w, p.BwdFilter, &c));
        p.WorkspaceBytes = Math.Max(a, Math.Max(b, c));
        return p;
    }

    private static int Pick(CudnnApi.AlgoPerf* perf, int count, string what, ConvGeometry g)
    {
        // Results come sorted by time; take the first that worked, is deterministic and fits.
        for (int i = 0; i < count; i++)
            if (perf[i].Status == CudnnStatus.Success && perf[i].Determinism == 1 && (long)perf[i].Memory <= WorkspaceLimit)
                return perf[i].Algo;
        for (int i = 0; i < count; i++)
            if (perf[i].Status == CudnnStatus.Success && (long)perf[i].Memory <= WorkspaceLimit)
                return perf[i].Algo;
        throw new CudaException($"cuDNN found no usable {what} algorithm for convolution {g}.");
    }

    public void Dispose()
    {
        foreach (var p in _plans.Values)
        {
            CudnnApi.cudnnDestroyTensorDescriptor(p.X);
            CudnnApi.cudnnDestroyFilterDescriptor(p.W);
            CudnnApi.cudnnDestroyTensorDescriptor(p.Y);
            CudnnApi.cudnnDestroyConvolutionDescriptor(p.Conv);
        }
        _plans.Clear();
        Workspace?.Dispose();
    }
}
