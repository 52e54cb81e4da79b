namespace CudaSwa.Native;

/// <summary>A failed CUDA driver, NVRTC, cuBLAS or cuDNN call, with the call's text and the library's own message.</summary>
public sealed class CudaException : Exception
{
    /// <summary>A failure described by <paramref name="message"/>; <paramref name="driverError"/> is the driver's CUresult when a driver call failed.</summary>
    public CudaException(string message, int? driverError = null) : base(message) => DriverError = driverError;

    /// <summary>The CUDA driver's result code (a CUresult) for failures of driver calls, else null.</summary>
    public int? DriverError { get; }
}
