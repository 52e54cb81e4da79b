using CudaSwa.Devices;
using CudaSwa.Tensors;

namespace CudaSwa.Cli;

/// <summary>
/// Opens the backend a command's --device names, with a sentence describing what was opened (or why
/// the CPU was chosen); a malformed value is a --device option error.
/// </summary>
public static class DeviceChoice
{
    /// <summary>
    /// The device of one rank of a data-parallel job: `--device cuda` (and `auto` where this
    /// machine has a GPU) becomes cuda:L with L the rank's index on its machine (MPI_LOCALRANKID
    /// from MPICH's hydra, OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID), so the ranks of one machine
    /// use one GPU each; `auto` without a GPU becomes cpu; anything else is kept as given.
    /// </summary>
    public static string ForRank(string device, Distributed.Collective collective, Func<string, string?> variables)
    {
        if (collective.Size == 1 || device is not ("auto" or "cuda")) return device;
        int gpus = Devices.BackendFactory.VisibleCudaDevices();
        if (gpus == 0) return device == "auto" ? "cpu" : device; // explicit cuda without a GPU: the open says why
        int local = collective.Rank;
        foreach (var name in new[] { "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID" })
            if (int.TryParse(variables(name), out int l) && l >= 0) { local = l; break; }
        // One visible GPU (a scheduler binding one per task) is every rank's; otherwise rank L takes GPU L (mod the count).
        return $"cuda:{local % gpus}";
    }

    public static Backend Open(string device, bool tf32, out string description)
    {
        try
        {
            return BackendFactory.Create(device, tf32, out description);
        }
        catch (ArgumentException e)
        {
            throw new OptionException($"--device: {e.Message}");
        }
        catch (DeviceUnavailableException e)
        {
            throw new OptionException($"--device {device} was asked for, but CUDA is unavailable: {e.Reason}");
        }
    }

    /// <summary>
    /// Passes to <paramref name="write"/> what a user of the CUDA backend should know: first what is
    /// verified of it on real hardware (<see cref="EngineInfo.CudaVerification"/>), then what the
    /// backend says while it works (e.g. a convolution shape with no preferred cuDNN algorithm):
    /// those raised so far, then each new one. Nothing for the CPU backend.
    /// </summary>
    public static void ForwardNotices(Backend backend, Action<string> write)
    {
        if (backend is not Cuda.CudaBackend cuda) return;
        write(EngineInfo.CudaVerification);
        foreach (var n in cuda.Notices) write(n);
        cuda.Notice += write;
    }
}
