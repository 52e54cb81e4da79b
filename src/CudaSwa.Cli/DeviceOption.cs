using CudaSwa.Devices;
using CudaSwa.Tensors;

namespace CudaSwa.Cli;

/// <summary>
/// Opens the backend a command's --device names, with a sentence describing what was opened (or why
/// the CPU was chosen); a malformed value is a --device option error.
/// </summary>
public static class DeviceOption
{
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
}
