namespace CudaSwa.Cpu.Workers;

/// <summary>
/// The CPU backend's worker pool: Workers-1 persistent background threads plus the calling
/// thread. A parallel loop publishes a job (body and counters), wakes the workers, and every participant claims
/// indices with an atomic counter; the caller then waits for the last index to finish.
/// Persistent threads matter here: with Parallel.For on a 2-core machine the pool thread often
/// starts late, the caller claims both halves, and the "parallel" op runs serially.
/// Nested loops (a parallel body that calls For again) run inline.
/// CUDASWA_CPU_THREADS overrides the worker count (default: all cores, shared evenly between the
/// ranks of an MPI job on the same machine).
/// </summary>
internal static class CpuParallel
{
    private static int s_workers = ReadWorkers();
    private static readonly object s_gate = new();
    private static Pool? s_pool;

    [ThreadStatic] private static bool t_inside;
    [ThreadStatic] private static int t_worker;

    public static int Workers
    {
        get => s_workers;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), $"Need at least one worker; got {value}.");
            lock (s_gate)
            {
                s_workers = value;
                s_pool?.Stop();
                s_pool = null;
            }
        }
    }

    private static int ReadWorkers()
    {
        string? env = Environment.GetEnvironmentVariable("CUDASWA_CPU_THREADS");
        if (int.TryParse(env, out int n) && n >= 1) return n;
        // Several ranks of an MPI job on this machine (MPICH's hydra, Open MPI) share its cores.
        foreach (var name in new[] { "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int local) && local > 1)
                return Math.Max(1, Environment.ProcessorCount / local);
        return Environment.ProcessorCount;
    }

    /// <summary>Runs body(i) for i in 0..count-1, inline when there is one item, one worker, or we are already inside a loop.</summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (count == 1 || s_workers == 1 || t_inside)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Pool pool;
        lock (s_gate) pool = s_pool ??= new Pool(s_workers - 1);
        pool.Run(count, body);
    }

    /// <summary>
    /// Runs body(worker, i) for i in 0..count-1, handing out items one at a time to whichever
    /// participant is free (robust when a neighbour slows one core down); worker is the
    /// participant's id in 0..Workers-1, for per-worker scratch. Use only where the result does
    /// not depend on which worker ran an item (no per-worker partial sums).
    /// </summary>
    public static void ForEachWithWorker(int count, Action<int, int> body)
    {
        if (count <= 0) return;
        if (count == 1 || s_workers == 1 || t_inside)
        {
            int w = t_inside ? t_worker : 0;
            for (int i = 0; i < count; i++) body(w, i);
            return;
        }
        For(count, i => body(t_worker, i));
    }

    /// <summary>
    /// Splits [0, length) into at most Workers contiguous ranges of at least minChunk elements and
    /// runs body(start, end) on each.
    /// </summary>
    public static void ForRange(long length, long minChunk, Action<long, long> body)
    {
        if (length <= 0) return;
        int parts = (int)Math.Clamp(length / Math.Max(1, minChunk), 1, s_workers);
        if (parts == 1)
        {
            body(0, length);
            return;
        }
        long chunk = (length + parts - 1) / parts;
        chunk = (chunk + 15) / 16 * 16; // keep vector-aligned boundaries
        For(parts, p =>
        {
            long start = p * chunk;
            long end = Math.Min(length, start + chunk);
            if (start < end) body(start, end);
        });
    }

    /// <summary>
    /// One parallel loop: its body, size and counters. Each loop gets a fresh job, so a worker
    /// that wakes late and still holds an earlier job can only find that job exhausted; it can
    /// never claim an index of the next loop before that loop's counters are set.
    /// </summary>
    private sealed class Job(Action<int> body, int count)
    {
        public readonly Action<int> Body = body;
        public readonly int Count = count;
        public int Next;
        public int Done;
        public Exception? Error;
    }

    private sealed class Pool
    {
        private readonly Thread[] _threads;
        private readonly SemaphoreSlim _wake = new(0);
        private readonly object _runGate = new();
        private volatile Job? _job;
        private volatile bool _stopping;

        public Pool(int threads)
        {
            _threads = new Thread[threads];
            for (int i = 0; i < threads; i++)
            {
                int id = i + 1; // the calling thread is worker 0
                _threads[i] = new Thread(() => { t_worker = id; WorkerLoop(); }) { IsBackground = true, Name = $"cudaswa-cpu-{id}" };
                _threads[i].Start();
            }
        }

        public void Run(int count, Action<int> body)
        {
            lock (_runGate) // one loop at a time; concurrent callers queue here
            {
                var job = new Job(body, count);
                _job = job;
                _wake.Release(Math.Min(_threads.Length, count - 1));
                t_worker = 0;
                Work(job);
                var spin = new SpinWait();
                while (Volatile.Read(ref job.Done) < count) spin.SpinOnce(sleep1Threshold: -1);
                _job = null;
                if (job.Error is not null)
                    throw new AggregateException("A parallel CPU op failed.", job.Error);
            }
        }

        private static void Work(Job job)
        {
            bool wasInside = t_inside;
            t_inside = true;
            try
            {
                while (true)
                {
                    int i = Interlocked.Increment(ref job.Next) - 1;
                    if (i >= job.Count) break;
                    try
                    {
                        job.Body(i);
                    }
                    catch (Exception e)
                    {
                        Interlocked.CompareExchange(ref job.Error, e, null);
                    }
                    Interlocked.Increment(ref job.Done);
                }
            }
            finally
            {
                t_inside = wasInside;
            }
        }

        private void WorkerLoop()
        {
            while (true)
            {
                _wake.Wait();
                if (_stopping) return;
                if (_job is { } job) Work(job);
            }
        }

        public void Stop()
        {
            _stopping = true;
            _wake.Release(_threads.Length);
        }
    }
}
