using CudaSwa.Native;
using CudaSwa.Tensors;

namespace CudaSwa.Cuda;

/// <summary>
/// The multi-tensor average update prepared on the device: its tables (<see cref="AverageTables"/>)
/// built and uploaded once when the plan is prepared — pointers and lengths do not change between
/// updates — so an update is one launch.
/// </summary>
internal sealed class CudaAveragePlan : AveragePlan
{
    private readonly CudaBackend _backend;
    private readonly DeviceBuffer _tables;

    public CudaAveragePlan(CudaBackend backend, AveragePair[] pairs, int chunkSize) : base(backend, pairs)
    {
        _backend = backend;
        var block = AverageTables.Build(pairs.Select(p => new AverageTables.Pair(CudaBackend.AddressOf(p.Average).Address,
            CudaBackend.AddressOf(p.Current).Address, p.Average.Length)).ToList(), chunkSize);
        Chunks = block.Chunks;
        int size = Math.Max(block.Bytes.Length, 1);
        _tables = backend.Allocate(size, DType.UInt8);
        backend.Upload<byte>(block.Bytes.Length == 0 ? new byte[1] : block.Bytes, _tables.AsTensor(new TensorShape(size)));
        var t = ((CudaBuffer)_tables).Address;
        Averages = t.Plus(block.AveragesOffset);
        Currents = t.Plus(block.CurrentsOffset);
        Lengths = t.Plus(block.LengthsOffset);
        ChunkStart = t.Plus(block.ChunkStartOffset);
        ChunkPair = t.Plus(block.ChunkPairOffset);
    }

    public int Chunks { get; }
    public DevicePtr Averages { get; }
    public DevicePtr Currents { get; }
    public DevicePtr Lengths { get; }
    public DevicePtr ChunkStart { get; }
    public DevicePtr ChunkPair { get; }

    protected override void Free()
    {
        // The tables may still be read by a queued launch: wait for it before freeing. On a device
        // that has already failed the wait fails too: the first error is the one being reported (a
        // `using` is unwinding it), so this one must not replace it.
        try
        {
            if (!_tables.IsDisposed && !_backend.IsClosed) _backend.Synchronize();
        }
        catch (CudaException) { }
        _tables.Dispose();
    }
}
