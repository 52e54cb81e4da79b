using CudaSwa.Backends;
using CudaSwa.Cpu;
using CudaSwa.Tensors;
using NUnit.Framework;

namespace CudaSwa.Tests.Support;

/// <summary>
/// Every op fixture runs once per backend. The CUDA instance carries the category "Gpu"; without
/// a usable GPU its tests are ignored with the reason, never passed.
/// </summary>
public static class BackendFixtures
{
    public static IEnumerable<TestFixtureData> All()
    {
        yield return new TestFixtureData("cpu");
        var cuda = new TestFixtureData("cuda");
        cuda.Properties.Add("Category", "Gpu");
        yield return cuda;
    }

    private static readonly Lazy<(Backend? Backend, string Reason)> s_cuda = new(() =>
    {
        bool ok = BackendFactory.TryCreateCuda(0, out var backend, out string reason);
        return (ok ? backend : null, reason);
    });

    public static Backend Create(string name)
    {
        if (name == "cpu") return new CpuBackend();
        var (backend, reason) = s_cuda.Value;
        if (backend is null) Assert.Ignore($"No GPU: CUDA unavailable: {reason}");
        return backend!;
    }

    /// <summary>The CUDA backend if one works here (for GPU-only tests), else ignores the test with the reason.</summary>
    public static Backend RequireCuda()
    {
        var (backend, reason) = s_cuda.Value;
        if (backend is null) Assert.Ignore($"No GPU: CUDA unavailable: {reason}");
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

    /// <summary>The shared CUDA backend outlives fixtures; CPU backends are per fixture.</summary>
    [OneTimeTearDown]
    public void ReleaseBackend()
    {
        if (B is { IsCuda: false }) B.Dispose();
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
    protected double Tol => B.IsCuda ? 4 : 1;
}
