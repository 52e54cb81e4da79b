using CudaSwa.Devices;
using CudaSwa.Cpu;
using CudaSwa.Cuda;
using CudaSwa.Native;
using CudaSwa.Tensors;
using NUnit.Framework;

namespace CudaSwa.Tests.Support;

/// <summary>
/// Every op fixture runs once per backend:
///   "cpu"     — the reference;
///   "cuda"    — the CUDA backend on a real GPU (category Gpu). Without one its tests are ignored
///               with the reason, or FAIL with it when CUDASWA_REQUIRE_GPU=1 (a GPU run that
///               tests nothing must not look green);
///   "StandIn" — the same CUDA backend code over the host-memory stand-in CUDA stack (category
///               StandIn): the stand-in driver with the kernels emulated on the CPU, and the
///               stand-in cuDNN and cuBLAS (float64 loops written from NVIDIA's documentation).
/// </summary>
public static class BackendFixtures
{
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";
    public const string StandInName = "StandIn";

    public static IEnumerable<TestFixtureData> All()
    {
        yield return new TestFixtureData(Cpu);
        var cuda = new TestFixtureData(Cuda);
        cuda.Properties.Add("Category", "Gpu");
        yield return cuda;
        var standIn = new TestFixtureData(StandInName);
        standIn.Properties.Add("Category", "StandIn");
        yield return standIn;
    }

    /// <summary>The CUDA backend only: on a real GPU and over the stand-in driver (device-vs-CPU parity tests).</summary>
    public static IEnumerable<TestFixtureData> Devices() => All().Where(f => (string)f.Arguments[0]! != Cpu);

    /// <summary>Set on a GPU host: Gpu tests fail, not skip, when CUDA does not come up.</summary>
    public static bool GpuRequired => Environment.GetEnvironmentVariable("CUDASWA_REQUIRE_GPU") == "1";

    private static readonly Lazy<(Backend? Backend, string Reason)> s_cuda = new(() =>
    {
        bool ok = BackendFactory.TryCreateCuda(0, out var backend, out string reason);
        // The load trace of the driver, unless the reason already is that trace.
        if (!ok && !reason.Contains("libcuda.so.1", StringComparison.Ordinal)) reason += $" [driver: {NativeLibraries.Trace(NativeLibraries.Cuda)}]";
        return (ok ? backend : null, reason);
    });

    /// <summary>A backend for a fixture; the caller owns it unless it is the shared real-GPU backend.</summary>
    public static Backend Create(string name) => name switch
    {
        Cpu => new CpuBackend(),
        Cuda => RequireCuda(),
        StandInName => StandIn.CreateBackend(),
        _ => throw new ArgumentException($"unknown backend fixture '{name}'", nameof(name)),
    };

    public static bool IsShared(string name) => name == Cuda;

    /// <summary>The CUDA backend if a GPU works here, else the test is ignored (or failed under CUDASWA_REQUIRE_GPU=1) with the reason.</summary>
    public static Backend RequireCuda()
    {
        var (backend, reason) = s_cuda.Value;
        if (backend is null)
        {
            if (GpuRequired) Assert.Fail($"CUDASWA_REQUIRE_GPU=1 but CUDA is unavailable: {reason}");
            Assert.Ignore($"No GPU: CUDA unavailable: {reason}");
        }
        return backend!;
    }
}

/// <summary>Base of per-backend fixtures: one backend for the fixture, plus a CPU backend as reference.</summary>
public abstract class BackendTest
{
    protected BackendTest(string backendName) => BackendName = backendName;

    protected string BackendName { get; }
    protected Backend B { get; private set; } = null!;
    protected Fresh Rng { get; private set; } = null!;

    [OneTimeSetUp]
    public void CreateBackend() => B = BackendFixtures.Create(BackendName);

    [OneTimeTearDown]
    public void ReleaseBackend()
    {
        if (B is not null && !BackendFixtures.IsShared(BackendName)) B.Dispose();
    }

    [SetUp]
    public void NewRandom() => Rng = new Fresh();

    protected Tensor Put(float[] values, params int[] shape)
    {
        var t = B.AllocateTensor(new TensorShape(shape));
        B.Upload<float>(values, t);
        return t;
    }

    protected Tensor PutInts(int[] values)
    {
        var t = B.AllocateTensor(new TensorShape(values.Length), DType.Int32);
        B.Upload<int>(values, t);
        return t;
    }

    protected Tensor Poisoned(params int[] shape) => Put(Close.Poison((int)new TensorShape(shape).Length), shape);

    protected float[] Get(Tensor t) => B.ToArray(t);

    /// <summary>Tolerance scale: the CPU reference is computed in float32 with double sums; GPUs reorder sums.</summary>
    protected double Tol => (B is CudaBackend ? 4 : 1) * ToleranceScale;

    /// <summary>Widens <see cref="Tol"/> for a test that runs a less exact algorithm on purpose.</summary>
    protected double ToleranceScale { get; set; } = 1;
}
