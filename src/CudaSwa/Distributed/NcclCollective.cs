using CudaSwa.Cuda;
using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Distributed;

/// <summary>
/// GPU ranks: tensors on the CUDA backend are summed by NCCL, GPU to GPU, on the backend's stream
/// (a weighted sum is one ncclAllReduce with a pre-multiplying sum operator); small host values
/// (stop flags, checksums, BN merges) and the communicator's unique id go through the bootstrap
/// collective (MPI), which also gives rank and size. One GPU per rank.
/// </summary>
public sealed unsafe class NcclCollective : Collective
{
    private readonly Collective _bootstrap;
    private readonly Backend _backend;
    private readonly NcclApi _nccl;
    private IntPtr _comm;

    private NcclCollective(Collective bootstrap, Backend backend, NcclApi nccl, IntPtr comm, int version)
    {
        _bootstrap = bootstrap;
        _backend = backend;
        _nccl = nccl;
        _comm = comm;
        Description = $"NCCL {version / 10000}.{version / 100 % 100}.{version % 100} ({nccl.Path}) for tensors, {bootstrap.Description} for the rest";
    }

    /// <inheritdoc/>
    public override int Rank => _bootstrap.Rank;
    /// <inheritdoc/>
    public override int Size => _bootstrap.Size;
    /// <inheritdoc/>
    public override string Description { get; }

    /// <summary>Whether NCCL can be loaded here, and if not, why.</summary>
    public static bool IsAvailable(out string reason) => NcclApi.TryLoad(out _, out reason);

    /// <summary>
    /// Creates the communicator of the ranks of <paramref name="bootstrap"/>, each on its own GPU
    /// (<paramref name="backend"/>, a CUDA backend): rank 0 makes the unique id, the bootstrap
    /// broadcasts it, every rank joins. Throws <see cref="DllNotFoundException"/> without NCCL.
    /// </summary>
    public static NcclCollective Open(Collective bootstrap, Backend backend)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        if (backend is not CudaBackend cuda) throw new ArgumentException($"NCCL sums tensors on a CUDA device; the backend is {backend?.Name ?? "null"}.", nameof(backend));
        if (!NcclApi.TryLoad(out var nccl, out string reason)) throw new DllNotFoundException(reason);
        int version;
        nccl!.Check(nccl.GetVersion(&version), "ncclGetVersion");
        var id = new NcclApi.UniqueId();
        if (bootstrap.IsRoot) nccl.Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        bootstrap.Broadcast(new Span<byte>(id.Internal, NcclApi.UniqueIdBytes), 0);
        cuda.Device.MakeCurrent();
        IntPtr comm;
        nccl.Check(nccl.CommInitRank(&comm, bootstrap.Size, id, bootstrap.Rank), "ncclCommInitRank");
        return new NcclCollective(bootstrap, backend, nccl, comm, version);
    }

    /// <summary>The sum over the ranks of weight·tensor, by NCCL in place on the device (other backends: through the host).</summary>
    public override void AllReduceSum(Backend backend, Tensor tensor, float weight)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (!ReferenceEquals(backend, _backend))
        {
            base.AllReduceSum(backend, tensor, weight);
            return;
        }
        ObjectDisposedException.ThrowIf(_comm == IntPtr.Zero, this);
        ((CudaBackend)backend).Device.MakeCurrent();
        int op = NcclApi.Sum;
        if (weight != 1f) _nccl.Check(_nccl.RedOpCreatePreMulSum(&op, &weight, NcclApi.Float32, NcclApi.ScalarHostImmediate, _comm), "ncclRedOpCreatePreMulSum");
        try
        {
            ulong p = CudaBackend.AddressOf(tensor).Address;
            _nccl.Check(_nccl.AllReduce(p, p, (nuint)tensor.Length, NcclApi.Float32, op, _comm, IntPtr.Zero), "ncclAllReduce");
        }
        finally
        {
            if (op != NcclApi.Sum) _nccl.RedOpDestroy(op, _comm);
        }
    }

    /// <inheritdoc/>
    public override void AllReduceSum(Span<float> values) => _bootstrap.AllReduceSum(values);
    /// <inheritdoc/>
    public override void AllReduceSumDouble(Span<double> values) => _bootstrap.AllReduceSumDouble(values);
    /// <inheritdoc/>
    public override void Broadcast(Span<byte> values, int root) => _bootstrap.Broadcast(values, root);
    /// <inheritdoc/>
    public override void Barrier() => _bootstrap.Barrier();

    /// <summary>Aborts the communicator's work on the GPU, then ends every rank through the bootstrap.</summary>
    public override void Abort(int exitCode)
    {
        if (_comm != IntPtr.Zero) _nccl.CommAbort(_comm);
        _comm = IntPtr.Zero;
        _bootstrap.Abort(exitCode);
    }

    /// <summary>Destroys the communicator (the bootstrap stays: it belongs to the process).</summary>
    public override void Dispose()
    {
        if (_comm != IntPtr.Zero) _nccl.CommDestroy(_comm);
        _comm = IntPtr.Zero;
        base.Dispose();
    }
}
