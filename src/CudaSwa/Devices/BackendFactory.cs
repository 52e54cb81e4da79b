using CudaSwa.Cpu;
using CudaSwa.Tensors;

namespace CudaSwa.Devices;

/// <summary>
/// Turns a device option ("auto", "cpu", "cuda", "cuda:N") into a backend. "auto" takes CUDA
/// when it works and otherwise the CPU, and says why in the <c>note</c> it returns.
/// </summary>
public static class BackendFactory
{
    /// <summary>
    /// Creates the backend for <paramref name="device"/> ("auto", "cpu", "cuda" or "cuda:N") with TF32 off;
    /// <paramref name="note"/> says what runs and, for "auto" on the CPU, why CUDA did not.
    /// </summary>
    public static Backend Create(string device, out string note) => Create(device, allowTf32: false, out note);

    /// <summary>
    /// Creates the backend for <paramref name="device"/> ("auto", "cpu", "cuda" or "cuda:N"), TF32 as
    /// <paramref name="allowTf32"/>; <paramref name="note"/> says what runs and, for "auto" on the CPU, why CUDA
    /// did not. Throws <see cref="ArgumentException"/> for another name and <see cref="DeviceUnavailableException"/>
    /// when CUDA is asked for by name and cannot be used.
    /// </summary>
    public static Backend Create(string device, bool allowTf32, out string note)
    {
        ArgumentNullException.ThrowIfNull(device);
        string d = device.Trim().ToLowerInvariant();
        if (d == "cpu")
        {
            note = "running on the CPU (device cpu)";
            return new CpuBackend();
        }
        if (d == "auto")
        {
            if (TryCreateCuda(0, allowTf32, out var cuda, out string reason))
            {
                note = $"running on {cuda!.Description}";
                return cuda;
            }
            note = $"CUDA unavailable: {reason}; running on the CPU";
            return new CpuBackend();
        }
        if (d == "cuda" || d.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int ordinal = 0;
            if (d.Length > 4 && !int.TryParse(d.AsSpan(5), out ordinal))
                throw new ArgumentException($"Device '{device}' is not valid: expected auto, cpu, cuda or cuda:N with N a device number.");
            if (!TryCreateCuda(ordinal, allowTf32, out var cuda, out string reason))
                throw new DeviceUnavailableException($"Device '{device}' was asked for, but CUDA is unavailable: {reason}", reason);
            note = $"running on {cuda!.Description}";
            return cuda;
        }
        throw new ArgumentException($"Device '{device}' is not valid: expected auto, cpu, cuda or cuda:N.");
    }

    /// <summary>
    /// A backend whose tensors live in host memory (the CPU backend), for state kept off the device,
    /// such as an average placed in host memory.
    /// </summary>
    internal static Backend CreateHost() => new CpuBackend();

    /// <summary>The number of CUDA devices this process can see; 0 when the driver or a library is missing or fails.</summary>
    public static int VisibleCudaDevices()
    {
        try
        {
            return Cuda.CudaDevice.Count();
        }
        catch (Exception e) when (e is DllNotFoundException or Native.CudaException or EntryPointNotFoundException or InvalidOperationException)
        {
            return 0;
        }
    }

    /// <summary>Tries to bring up the CUDA backend on a device; never throws for a missing driver or library.</summary>
    public static bool TryCreateCuda(int ordinal, out Backend? backend, out string reason) =>
        TryCreateCuda(ordinal, allowTf32: false, out backend, out reason);

    /// <summary>
    /// Tries to bring up the CUDA backend on device <paramref name="ordinal"/>, TF32 as
    /// <paramref name="allowTf32"/>; on failure returns false with the reason instead of throwing.
    /// </summary>
    public static bool TryCreateCuda(int ordinal, bool allowTf32, out Backend? backend, out string reason)
    {
        backend = null;
        try
        {
            backend = Cuda.CudaBackend.Create(ordinal, allowTf32);
            reason = "";
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or Native.CudaException or BadImageFormatException)
        {
            reason = e.Message;
            return false;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Any other failure while bringing CUDA up (GPU out of memory for the workspace, a
            // library that misbehaves) still leaves the CPU usable: report it, with its type.
            reason = $"{e.GetType().Name}: {e.Message}";
            return false;
        }
    }
}

/// <summary>The device asked for cannot be used here; the message says why.</summary>
public sealed class DeviceUnavailableException(string message, string reason) : InvalidOperationException(message)
{
    /// <summary>Why the device cannot be used (a missing driver or library, a failed initialisation).</summary>
    public string Reason { get; } = reason;
}
