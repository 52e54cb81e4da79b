namespace CudaSwa.Backends;

/// <summary>Lines for `cudaswa info` about CUDA: driver, devices, libraries and versions, or the one reason it is unavailable.</summary>
public static class CudaInfo
{
    public static IEnumerable<string> Describe()
    {
        if (!BackendFactory.TryCreateCuda(0, out var backend, out string reason))
        {
            yield return $"CUDA unavailable: {reason}";
            yield break;
        }
        using (backend) yield return $"CUDA: {backend!.Description}";
    }
}
