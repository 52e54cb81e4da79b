using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.InteropServices;

namespace CudaSwa.Cuda;

/// <summary>A device address passed to a kernel (a CUdeviceptr): 8 bytes, like every pointer parameter.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct DevicePtr(ulong Address)
{
    public static DevicePtr Null => default;

    public DevicePtr Plus(long bytes) => new(Address + (ulong)bytes);
}

/// <summary>A 0/1 int kernel parameter written as a bool at the call site.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct Flag(int Value)
{
    public static implicit operator Flag(bool on) => new(on ? 1 : 0);
}

/// <summary>How a kernel parameter is passed: its byte offset in the argument block, its size and whether it is floating point.</summary>
internal readonly record struct KernelParameter(string Name, int Offset, int Size, bool IsFloat)
{
    public override string ToString() => $"{Name}@{Offset}:{(IsFloat ? "f" : "i")}{Size * 8}";
}

/// <summary>
/// One kernel: the kernels/*.cu file it lives in, its extern "C" name, and its parameter list,
/// read from the argument struct <c>TArgs</c> whose fields are the kernel's parameters in order.
/// The struct's layout is the C layout of the parameter list (natural alignment), which is how
/// CUDA lays out kernel parameters; it is checked against the compiled kernel at load time where
/// the driver can say (cuFuncGetParamInfo), and against the PTX of every kernel in the tests.
/// </summary>
internal abstract class KernelSpec
{
    private static int s_next;

    protected KernelSpec(string file, string name, KernelParameter[] parameters)
    {
        File = file;
        Name = name;
        Parameters = parameters;
        Id = Interlocked.Increment(ref s_next) - 1;
    }

    public string File { get; }
    public string Name { get; }
    public IReadOnlyList<KernelParameter> Parameters { get; }

    /// <summary>Index into a kernel library's function table (no lookup by name per launch).</summary>
    public int Id { get; }

    public override string ToString() => $"{File}:{Name}({string.Join(", ", Parameters)})";
}

/// <inheritdoc cref="KernelSpec"/>
internal sealed class KernelSpec<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields | DynamicallyAccessedMemberTypes.NonPublicFields)] TArgs>
    : KernelSpec where TArgs : unmanaged
{
    public KernelSpec(string file, string name) : base(file, name, Layout()) { }

    private static KernelParameter[] Layout()
    {
        var fields = typeof(TArgs).GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        var parameters = new List<KernelParameter>();
        foreach (var f in fields)
        {
            var (size, isFloat) = f.FieldType switch
            {
                var t when t == typeof(DevicePtr) || t == typeof(long) || t == typeof(ulong) => (8, false),
                var t when t == typeof(int) || t == typeof(uint) || t == typeof(Flag) => (4, false),
                var t when t == typeof(float) => (4, true),
                var t when t == typeof(double) => (8, true),
                var t => throw new InvalidOperationException($"{typeof(TArgs).Name}.{f.Name}: kernel parameters are DevicePtr, long, int, uint, Flag, float or double; got {t.Name}."),
            };
            string name = f.Name.StartsWith('<') ? f.Name[1..f.Name.IndexOf('>')] : f.Name;
            parameters.Add(new KernelParameter(name, (int)Marshal.OffsetOf<TArgs>(f.Name), size, isFloat));
        }
        return [.. parameters.OrderBy(p => p.Offset)];
    }
}
