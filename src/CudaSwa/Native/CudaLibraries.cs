namespace CudaSwa.Native;

/// <summary>One CUDA library file in use: its display name, where it was loaded from and the version it reports.</summary>
/// <param name="Name">NVRTC, cuBLAS or cuDNN.</param>
/// <param name="Path">The file loaded.</param>
/// <param name="Version">The version the library reports about itself.</param>
public sealed record CudaLibrary(string Name, string Path, string Version);

/// <summary>
/// The CUDA libraries a <see cref="Cuda.CudaBackend"/> uses: NVRTC, cuBLAS and cuDNN of one CUDA major
/// (<see cref="CudaMajor"/>), no newer than the driver supports.
/// </summary>
/// <param name="DriverVersion">The driver's CUDA version as 1000 * major + 10 * minor, when a driver was loaded.</param>
/// <param name="CudaMajor">The CUDA major every chosen library belongs to.</param>
/// <param name="Nvrtc">The runtime compiler that builds the kernels.</param>
/// <param name="Cublas">cuBLAS, or null for a kernels-only backend.</param>
/// <param name="Cudnn">cuDNN, or null for a kernels-only backend.</param>
/// <param name="Warnings">Mismatches that did not prevent the choice.</param>
/// <param name="Report">Lines for a log: each library chosen, every other file seen and why it was passed over.</param>
public sealed record CudaLibraries(int? DriverVersion, int CudaMajor, CudaLibrary? Nvrtc, CudaLibrary? Cublas, CudaLibrary? Cudnn,
    IReadOnlyList<string> Warnings, IReadOnlyList<string> Report);
