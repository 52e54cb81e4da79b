using CudaSwa.Cpu;
using CudaSwa.Tensors;

namespace CudaSwa.Backends;

/// <summary>
/// Turns a device option ("auto", "cpu", "cuda", "cuda:N") into a backend. "auto" takes CUDA
/// when it works and otherwise the CPU, and says why in <paramref name="note"/>.
/// </summary>
public static class BackendFactory
{
    public static Backend Create(string device, out string note)
    {
        ArgumentNullException.ThrowIfNull(device);
        string d = device.Trim().ToLowerInvariant();
        if (d == "cpu")
        {
            note = "running on the CPU (--device cpu)";
            return new CpuBackend();
        }
        if (d == "auto")
        {
            if (TryCreateCuda(0, out var cuda, out string reason))
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
            if (!TryCreateCuda(ordinal, out var cuda, out string reason))
                throw new InvalidOperationException($"--device {device} was asked for, but CUDA is unavailable: {reason}");
            note = $"running on {cuda!.Description}";
            return cuda;
        }
        throw new ArgumentException($"Device '{device}' is not valid: expected auto, cpu, cuda or cuda:N.");
    }

    /// <summary>Tries to bring up the CUDA backend on a device; never throws for a missing driver or library.</summary>
    public static bool TryCreateCuda(int ordinal, out Backend? backend, out string reason)
    {
        backend = null;
        reason = "this build has no CUDA backend yet";
        return false;
    }
}
