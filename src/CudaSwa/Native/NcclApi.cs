using System.Runtime.InteropServices;

namespace CudaSwa.Native;

/// <summary>
/// NCCL (nccl.h; checked against NVIDIA/nccl src/nccl.h.in as of NCCL 2.2x, and by
/// NcclBindingTests against any nccl.h found on the machine): the functions the GPU collective
/// needs, bound by name from libnccl.so.2 — from CUDASWA_NCCL (a file), the CUDA library folders
/// (the toolkit, LD_LIBRARY_PATH, PyTorch's nvidia-nccl wheels), then the system loader.
/// ncclUniqueId is 128 bytes passed by value; ncclComm_t is a pointer; cudaStream_t is CUstream.
/// </summary>
internal sealed unsafe class NcclApi
{
    public const int UniqueIdBytes = 128;
    public const int Success = 0;
    public const int Uint8 = 1, Float32 = 7, Float64 = 8;
    public const int Sum = 0;
    public const int ScalarHostImmediate = 1;

    /// <summary>The C functions bound and their parameter counts (what NcclBindingTests compares with nccl.h).</summary>
    public static readonly (string Name, int Parameters)[] Functions =
    [
        ("ncclGetVersion", 1), ("ncclGetUniqueId", 1), ("ncclCommInitRank", 4), ("ncclCommDestroy", 1), ("ncclCommAbort", 1),
        ("ncclAllReduce", 7), ("ncclBroadcast", 7), ("ncclRedOpCreatePreMulSum", 5), ("ncclRedOpDestroy", 2),
    ];

    [StructLayout(LayoutKind.Sequential, Size = UniqueIdBytes)]
    public struct UniqueId
    {
        public fixed byte Internal[UniqueIdBytes];
    }

    public delegate* unmanaged<int*, int> GetVersion;
    public delegate* unmanaged<UniqueId*, int> GetUniqueId;
    public delegate* unmanaged<IntPtr*, int, UniqueId, int, int> CommInitRank;
    public delegate* unmanaged<IntPtr, int> CommDestroy;
    public delegate* unmanaged<IntPtr, int> CommAbort;
    public delegate* unmanaged<ulong, ulong, nuint, int, int, IntPtr, IntPtr, int> AllReduce;
    public delegate* unmanaged<ulong, ulong, nuint, int, int, IntPtr, IntPtr, int> Broadcast;
    public delegate* unmanaged<int*, void*, int, int, IntPtr, int> RedOpCreatePreMulSum;
    public delegate* unmanaged<int, IntPtr, int> RedOpDestroy;
    public delegate* unmanaged<int, byte*> GetErrorString;

    /// <summary>The file loaded.</summary>
    public string Path { get; private init; } = "";

    private static NcclApi? s_api;
    private static string? s_failure;
    private static readonly object s_gate = new();

    /// <summary>Loads NCCL once per process; false with the places tried when it is not found.</summary>
    public static bool TryLoad(out NcclApi? api, out string reason)
    {
        lock (s_gate)
        {
            if (s_api is null && s_failure is null) Load();
            api = s_api;
            reason = s_failure ?? "";
            return api is not null;
        }
    }

    private static void Load()
    {
        var tried = new List<string>();
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("CUDASWA_NCCL") is { Length: > 0 } file) candidates.Add(file);
        foreach (var dir in NativeLibraries.SearchFolders(includePython: true))
            foreach (var name in new[] { "libnccl.so.2", "libnccl.so" })
                if (File.Exists(System.IO.Path.Combine(dir, name))) candidates.Add(System.IO.Path.Combine(dir, name));
        candidates.Add("libnccl.so.2");
        foreach (var path in candidates.Distinct())
        {
            if (!NativeLibrary.TryLoad(path, out var handle)) { tried.Add($"{path}: not loadable"); continue; }
            try
            {
                s_api = Bind(handle, path);
                return;
            }
            catch (EntryPointNotFoundException e)
            {
                tried.Add($"{path}: {e.Message}");
            }
        }
        s_failure = $"NCCL (libnccl.so.2) was not found or not usable; tried {string.Join("; ", tried)}. Install it (PyTorch's nvidia-nccl wheel, or NVIDIA's libnccl2) or name the file with CUDASWA_NCCL.";
    }

    private static NcclApi Bind(IntPtr handle, string path)
    {
        IntPtr Get(string symbol) => NativeLibrary.TryGetExport(handle, symbol, out var f) ? f
            : throw new EntryPointNotFoundException($"no {symbol} (NCCL 2.11 or newer is needed)");
        return new NcclApi
        {
            Path = path,
            GetVersion = (delegate* unmanaged<int*, int>)Get("ncclGetVersion"),
            GetUniqueId = (delegate* unmanaged<UniqueId*, int>)Get("ncclGetUniqueId"),
            CommInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Get("ncclCommInitRank"),
            CommDestroy = (delegate* unmanaged<IntPtr, int>)Get("ncclCommDestroy"),
            CommAbort = (delegate* unmanaged<IntPtr, int>)Get("ncclCommAbort"),
            AllReduce = (delegate* unmanaged<ulong, ulong, nuint, int, int, IntPtr, IntPtr, int>)Get("ncclAllReduce"),
            Broadcast = (delegate* unmanaged<ulong, ulong, nuint, int, int, IntPtr, IntPtr, int>)Get("ncclBroadcast"),
            RedOpCreatePreMulSum = (delegate* unmanaged<int*, void*, int, int, IntPtr, int>)Get("ncclRedOpCreatePreMulSum"),
            RedOpDestroy = (delegate* unmanaged<int, IntPtr, int>)Get("ncclRedOpDestroy"),
            GetErrorString = (delegate* unmanaged<int, byte*>)Get("ncclGetErrorString"),
        };
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> with NCCL's own message unless <paramref name="result"/> is ncclSuccess.</summary>
    public void Check(int result, string function)
    {
        if (result == Success) return;
        string text = Marshal.PtrToStringUTF8((IntPtr)GetErrorString(result)) ?? "";
        throw new InvalidOperationException($"{function} failed: NCCL error {result} ({text}).");
    }
}
