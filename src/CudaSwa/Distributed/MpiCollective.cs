using System.Runtime.InteropServices;
using System.Text;

namespace CudaSwa.Distributed;

/// <summary>
/// CPU ranks over MPI, through our own bindings to the MPICH ABI (libmpi.so.12 / libmpich.so.12:
/// MPICH, Intel MPI, MVAPICH, Cray MPICH). That ABI's handles are plain integers with fixed
/// values (MPI_COMM_WORLD = 0x44000000, MPI_FLOAT = 0x4c00040a, ...), so a handful of C
/// functions bound by name is all it takes; Open MPI's handles are addresses of library globals
/// and would need a compiled shim (not supported). Debian: `apt-get install mpich`; launch with
/// `mpiexec -n N cudaswa ...`. Errors are fatal (MPI_ERRORS_ARE_FATAL): a failing or killed rank
/// ends the whole job through the launcher instead of leaving the others waiting.
/// </summary>
public sealed unsafe class MpiCollective : Collective
{
    private const int CommWorld = 0x44000000;
    private const int Float = 0x4c00040a, Double = 0x4c00080b, Byte = 0x4c00010d;
    private const int Sum = 0x58000003;
    private static readonly void* InPlace = (void*)-1;

    /// <summary>The MPICH-ABI libraries tried, in order.</summary>
    public static readonly string[] Libraries = ["libmpi.so.12", "libmpich.so.12"];

    private readonly Api _api;
    private static MpiCollective? s_world;
    private static readonly object s_lock = new();

    private MpiCollective(Api api, int rank, int size, string version)
    {
        _api = api;
        Rank = rank;
        Size = size;
        Description = $"MPI ({version}), {size} ranks";
    }

    /// <inheritdoc/>
    public override int Rank { get; }
    /// <inheritdoc/>
    public override int Size { get; }
    /// <inheritdoc/>
    public override string Description { get; }

    /// <summary>
    /// The MPI job this process was launched into: joined once per process (MPI_Init, unless done
    /// already; MPI cannot be initialised twice), left when the process exits (MPI_Finalize).
    /// Throws <see cref="DllNotFoundException"/> saying what to install when no MPICH-ABI library is found.
    /// </summary>
    public static MpiCollective Open()
    {
        lock (s_lock) return s_world ??= Join();
    }

    private static MpiCollective Join()
    {
        var api = Api.Load();
        int initialised;
        Check(api.Initialized(&initialised), "MPI_Initialized");
        if (initialised == 0)
        {
            Check(api.Init(null, null), "MPI_Init");
            AppDomain.CurrentDomain.ProcessExit += (_, _) => api.Finalize();
        }
        int rank, size, length;
        Check(api.CommRank(CommWorld, &rank), "MPI_Comm_rank");
        Check(api.CommSize(CommWorld, &size), "MPI_Comm_size");
        var version = new byte[8192];
        fixed (byte* v = version) Check(api.GetLibraryVersion(v, &length), "MPI_Get_library_version");
        string text = string.Join(" ", Encoding.ASCII.GetString(version, 0, Math.Max(0, length)).Split('\n')[0].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return new MpiCollective(api, rank, size, text);
    }

    /// <inheritdoc/>
    public override void AllReduceSum(Span<float> values)
    {
        fixed (float* p = values)
            for (int start = 0; start < values.Length; start += Chunk)
                Check(_api.Allreduce(InPlace, p + start, Math.Min(Chunk, values.Length - start), Float, Sum, CommWorld), "MPI_Allreduce");
    }

    /// <inheritdoc/>
    public override void AllReduceSumDouble(Span<double> values)
    {
        fixed (double* p = values)
            for (int start = 0; start < values.Length; start += Chunk)
                Check(_api.Allreduce(InPlace, p + start, Math.Min(Chunk, values.Length - start), Double, Sum, CommWorld), "MPI_Allreduce");
    }

    /// <inheritdoc/>
    public override void Broadcast(Span<byte> values, int root)
    {
        if (root < 0 || root >= Size) throw new ArgumentOutOfRangeException(nameof(root), $"Rank {root} does not exist: the job has ranks 0..{Size - 1}.");
        fixed (byte* p = values)
            for (int start = 0; start < values.Length; start += Chunk)
                Check(_api.Bcast(p + start, Math.Min(Chunk, values.Length - start), Byte, root, CommWorld), "MPI_Bcast");
    }

    /// <inheritdoc/>
    public override void Barrier() => Check(_api.Barrier(CommWorld), "MPI_Barrier");

    /// <summary>MPI_Abort: the launcher ends every rank with <paramref name="exitCode"/>.</summary>
    public override void Abort(int exitCode) => _api.Abort(CommWorld, exitCode);

    /// <summary>Does nothing: the process stays in the job until it exits (MPI cannot be joined twice).</summary>
    public override void Dispose() => base.Dispose();

    /// <summary>MPI counts are C ints: larger buffers go in pieces of this many elements.</summary>
    private const int Chunk = 1 << 30;

    private static void Check(int code, string function)
    {
        if (code != 0) throw new InvalidOperationException($"{function} failed with MPI error code {code}.");
    }

    /// <summary>The entry points, from one loaded MPICH-ABI library.</summary>
    private sealed class Api
    {
        public delegate* unmanaged<int*, byte***, int> Init;
        public delegate* unmanaged<int*, int> Initialized;
        public delegate* unmanaged<int> Finalize;
        public delegate* unmanaged<int, int*, int> CommRank;
        public delegate* unmanaged<int, int*, int> CommSize;
        public delegate* unmanaged<void*, void*, int, int, int, int, int> Allreduce;
        public delegate* unmanaged<void*, int, int, int, int, int> Bcast;
        public delegate* unmanaged<int, int> Barrier;
        public delegate* unmanaged<byte*, int*, int> GetLibraryVersion;
        public delegate* unmanaged<int, int, int> Abort;

        /// <summary>Loads and binds the library (once per process: <see cref="Open"/> joins the job once).</summary>
        public static Api Load()
        {
            IntPtr handle = IntPtr.Zero;
            foreach (var name in Libraries)
                if (NativeLibrary.TryLoad(name, out handle)) break;
            if (handle == IntPtr.Zero)
                throw new DllNotFoundException($"No MPI library with the MPICH ABI was found ({string.Join(", ", Libraries)}). Install MPICH (Debian/Ubuntu: apt-get install mpich) and launch with mpiexec -n N.");
            IntPtr Get(string symbol) => NativeLibrary.TryGetExport(handle, symbol, out var f) ? f
                : throw new EntryPointNotFoundException($"The MPI library has no {symbol}: it is not an MPICH-ABI library.");
            return new Api
            {
                Init = (delegate* unmanaged<int*, byte***, int>)Get("MPI_Init"),
                Initialized = (delegate* unmanaged<int*, int>)Get("MPI_Initialized"),
                Finalize = (delegate* unmanaged<int>)Get("MPI_Finalize"),
                CommRank = (delegate* unmanaged<int, int*, int>)Get("MPI_Comm_rank"),
                CommSize = (delegate* unmanaged<int, int*, int>)Get("MPI_Comm_size"),
                Allreduce = (delegate* unmanaged<void*, void*, int, int, int, int, int>)Get("MPI_Allreduce"),
                Bcast = (delegate* unmanaged<void*, int, int, int, int, int>)Get("MPI_Bcast"),
                Barrier = (delegate* unmanaged<int, int>)Get("MPI_Barrier"),
                GetLibraryVersion = (delegate* unmanaged<byte*, int*, int>)Get("MPI_Get_library_version"),
                Abort = (delegate* unmanaged<int, int, int>)Get("MPI_Abort"),
            };
        }
    }
}
