using System.Runtime.CompilerServices;
using CudaSwa.Native;

namespace CudaSwa.Cuda;

/// <summary>
/// Builds cuLaunchKernel's parameter array (an array of pointers to each argument's value) in
/// stack memory the caller provides, so a launch allocates nothing.
/// </summary>
public unsafe ref struct KernelArgs
{
    private const int MaxArgs = 32;
    private readonly byte* _values;
    private readonly void** _pointers;
    private int _count;
    private int _offset;

    /// <param name="values">Scratch of at least 8 * 32 bytes (stackalloc).</param>
    /// <param name="pointers">Scratch for 32 pointers (stackalloc).</param>
    public KernelArgs(byte* values, void** pointers)
    {
        _values = values;
        _pointers = pointers;
    }

    private void Add<T>(T value) where T : unmanaged
    {
        if (_count == MaxArgs) throw new InvalidOperationException("Too many kernel arguments.");
        int align = Unsafe.SizeOf<T>();
        _offset = (_offset + align - 1) / align * align;
        *(T*)(_values + _offset) = value;
        _pointers[_count++] = _values + _offset;
        _offset += Unsafe.SizeOf<T>();
    }

    public KernelArgs Ptr(ulong devicePointer) { Add(devicePointer); return this; }
    public KernelArgs I64(long v) { Add(v); return this; }
    public KernelArgs I32(int v) { Add(v); return this; }
    public KernelArgs U32(uint v) { Add(v); return this; }
    public KernelArgs F32(float v) { Add(v); return this; }
    public KernelArgs F64(double v) { Add(v); return this; }

    /// <summary>Launches on the legacy default stream (ordered with everything else the backend does).</summary>
    public readonly void Launch(IntPtr function, uint grid, uint block, string name)
    {
        if (grid == 0) return;
        var r = CuDriver.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, 0, IntPtr.Zero, _pointers, null);
        if (r != CuResult.Success) Check.Cu(r, $"launch of kernel {name} (grid {grid}, block {block})");
    }
}
