using CudaSwa.Tensors;

namespace CudaSwa.Distributed;

/// <summary>
/// What the ranks of one data-parallel job do together: sum a buffer across ranks (every rank gets
/// the sum), broadcast bytes from one rank, wait for all. Every rank must make the same calls in
/// the same order. Implementations: <see cref="Single"/> (one process: nothing to exchange),
/// <see cref="MpiCollective"/> (ranks over MPI) and <see cref="NcclCollective"/> (GPU tensors by
/// NCCL, the rest over MPI). Rank and size come from the launcher.
/// </summary>
public abstract class Collective : IDisposable
{
    /// <summary>This process's rank, from 0.</summary>
    public abstract int Rank { get; }
    /// <summary>The number of ranks.</summary>
    public abstract int Size { get; }
    /// <summary>Whether this is rank 0 (the rank that writes checkpoints and outputs).</summary>
    public bool IsRoot => Rank == 0;
    /// <summary>What carries the exchanges, for logs: e.g. "MPI (MPICH Version: 4.0.2 ...), 2 ranks".</summary>
    public abstract string Description { get; }

    /// <summary>Replaces <paramref name="values"/> with their element-wise sum over all ranks.</summary>
    public abstract void AllReduceSum(Span<float> values);
    /// <summary>Replaces <paramref name="values"/> with their element-wise sum over all ranks.</summary>
    public abstract void AllReduceSumDouble(Span<double> values);
    /// <summary>Every rank's <paramref name="values"/> become rank <paramref name="root"/>'s.</summary>
    public abstract void Broadcast(Span<byte> values, int root);
    /// <summary>Returns once every rank has called it.</summary>
    public abstract void Barrier();

    /// <summary>
    /// Replaces <paramref name="tensor"/> (on <paramref name="backend"/>) with the sum over all ranks
    /// of <paramref name="weight"/>·tensor (each rank's own weight; 1 leaves the values as they are
    /// before the sum): in place where the backend's memory is host-visible (no copy), through host memory otherwise.
    /// </summary>
    public virtual void AllReduceSum(Backend backend, Tensor tensor, float weight)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (Size == 1 && weight == 1f) return;
        if (backend.MemoryIsHostVisible)
        {
            var span = backend.HostSpan(tensor);
            if (weight != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(span, weight, span);
            AllReduceSum(span);
            return;
        }
        var host = backend.ToArray(tensor);
        if (weight != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(host, weight, host);
        AllReduceSum(host);
        backend.Upload<float>(host, tensor);
    }

    /// <summary>Whether any rank passes true (one small sum): ranks agree on stopping together.</summary>
    public bool Any(bool value)
    {
        if (Size == 1) return value;
        Span<float> flag = [value ? 1f : 0f];
        AllReduceSum(flag);
        return flag[0] > 0;
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the ranks' values when <paramref name="value"/> differs between ranks.</summary>
    public void CheckSame(double value, string what)
    {
        if (Size == 1) return;
        Span<double> all = new double[Size];
        all[Rank] = value;
        AllReduceSumDouble(all);
        for (int r = 0; r < Size; r++)
            if (BitConverter.DoubleToInt64Bits(all[r]) != BitConverter.DoubleToInt64Bits(value))
                throw new InvalidOperationException($"{what} differs between ranks: {string.Join(", ", all.ToArray().Select((v, i) => $"rank {i}: {v:R}"))}. Every rank must start from the same options, seed and checkpoint.");
    }

    /// <summary>Ends every rank of the job at once with <paramref name="exitCode"/> (one process: does nothing and returns).</summary>
    public virtual void Abort(int exitCode) { }

    /// <summary>Releases what this object holds (MPI: nothing; the process leaves the job when it exits).</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>One process alone: sums are the values, broadcasts and barriers do nothing.</summary>
    public static Collective Single { get; } = new SingleProcess();

    /// <summary>
    /// Whether a launcher started this process as one rank of several: MPICH/Intel MPI's hydra
    /// (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE) or Slurm's srun with PMI (PMI_SIZE) with a size above 1.
    /// </summary>
    public static bool LaunchedAsRanks(Func<string, string?> variables) => LaunchedSize(variables) > 1;

    /// <summary>This process's rank as the launcher gives it (PMI_RANK, OMPI_COMM_WORLD_RANK), before MPI is opened; 0 when none says.</summary>
    public static int LaunchedRank(Func<string, string?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return new[] { "PMI_RANK", "OMPI_COMM_WORLD_RANK" }.Select(n => int.TryParse(variables(n), out int r) ? r : 0).Max();
    }

    /// <summary>The number of ranks the launcher says it started (0 when none says).</summary>
    private static int LaunchedSize(Func<string, string?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return new[] { "PMI_SIZE", "OMPI_COMM_WORLD_SIZE" }.Select(n => int.TryParse(variables(n), out int s) ? s : 0).Max();
    }

    /// <summary>
    /// <see cref="MpiCollective.Open"/> when <see cref="LaunchedAsRanks"/>, else <see cref="Single"/>.
    /// Throws <see cref="InvalidOperationException"/> when MPI sees another number of ranks than the
    /// launcher started (a launcher of one MPI with the library of another: each process would be alone).
    /// </summary>
    public static Collective FromLauncher(Func<string, string?> variables)
    {
        int launched = LaunchedSize(variables);
        if (launched <= 1) return Single;
        var mpi = MpiCollective.Open();
        if (mpi.Size != launched)
            throw new InvalidOperationException($"The launcher started {launched} ranks but MPI ({mpi.Description}) sees {mpi.Size}: the launcher (mpiexec/mpirun) and the MPI library " +
                $"({string.Join(" or ", MpiCollective.Libraries)}) must come from the same MPI (e.g. MPICH's mpiexec with libmpich).");
        return mpi;
    }

    private sealed class SingleProcess : Collective
    {
        public override int Rank => 0;
        public override int Size => 1;
        public override string Description => "one process";
        public override void AllReduceSum(Span<float> values) { }
        public override void AllReduceSumDouble(Span<double> values) { }
        public override void Broadcast(Span<byte> values, int root)
        {
            if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), $"Rank {root} does not exist: one process has rank 0 only.");
        }
        public override void Barrier() { }
        public override void Dispose() { }
    }
}
