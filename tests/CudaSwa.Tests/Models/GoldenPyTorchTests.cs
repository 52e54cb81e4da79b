using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Models;

/// <summary>
/// Golden tests against PyTorch, one per model family: tests/golden/make_golden.py built each
/// network in PyTorch 1.13 with CudaSwa's state_dict names — ResNet from bench/pytorch's twin,
/// PreResNet (basic and bottleneck), VGG-16 (with and without BN) and WideResNet from
/// tests/golden/swa_reference_models.py, written from the SWA reference code's structure — at a
/// size small enough to keep (one block per stage, VGG at a sixteenth of its widths), drew random
/// weights, ran one training-mode forward/backward on a fixed batch and stored weights, input,
/// logits, loss, every gradient and the updated BN statistics. Our builders at the same sizes load
/// the same weights and must reproduce all of them: a layer missing, misplaced or mis-wired (a
/// ReLU left out, a shortcut on the wrong input, a stride on the wrong convolution) changes the
/// logits by far more than rounding. Every batch keeps every ReLU input at least 1e-5 from zero
/// (see the script), so both sides take the same ReLU branches. Tolerance: float32 with different
/// summation orders (oneDNN vs our GEMM): logits, loss and BN statistics to 1e-5 abs + 1e-4 rel,
/// gradients to 1e-6 abs + 1e-3 rel on the CPU; on CUDA (TF32 off: exact float32, cuDNN and
/// cuBLAS summing in yet other orders) four times those (Tol).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
[Category("Golden")]
public class GoldenPyTorchTests(string backend) : BackendTest(backend)
{
    /// <summary>Each fixture's network, built by our own builders at the fixture's size.</summary>
    private static readonly Dictionary<string, Func<NetworkBuilder>> Builders = new()
    {
        ["resnet8"] = () => ModelZoo.Describe("resnet8", 10),
        ["preresnet8"] = () => PreResNet.Describe(8, bottleneck: false, 10),
        ["preresnet11-bottleneck"] = () => PreResNet.Describe(11, bottleneck: true, 10),
        ["vgg16-w4"] = () => Vgg.Describe(batchNorm: false, 10, dropout: 0f, width: 4),
        ["vgg16bn-w4"] = () => Vgg.Describe(batchNorm: true, 10, dropout: 0f, width: 4),
        ["wrn10x2"] = () => WideResNet.Describe(10, 2, 10),
    };

    private static IEnumerable<string> Families() => Builders.Keys;

    private static readonly string[] Outputs = ["input", "labels", "logits", "loss"];

    [TestCaseSource(nameof(Families))]
    public void GoldenNetworkMatchesPyTorchLogitsLossGradientsAndRunningStats(string family)
    {
        string path = Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", $"{family}_golden.safetensors");
        var golden = SafeTensors.Read(path);
        float[] T(string name) => golden.Tensors[name].Data;

        int batch = golden.Tensors["input"].Shape[0];
        using var net = Builders[family]().Build(B, batch);
        Assert.That(net.ParameterCount.ToString(System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(golden.Metadata["parameters"]),
            "as many parameters as the PyTorch network");
        // Every weight of the fixture is one of ours, and every one of ours is in the fixture.
        var weights = golden.Tensors.Where(kv => !Outputs.Contains(kv.Key) && !kv.Key.StartsWith("grad.", StringComparison.Ordinal) && !kv.Key.StartsWith("after.", StringComparison.Ordinal))
            .ToDictionary();
        var ours = net.ParameterLayout.Entries.Concat(net.BufferLayout.Entries).Select(e => e.Name).ToHashSet();
        Assert.That(weights.Keys.Where(k => !ours.Contains(k)), Is.Empty, "fixture weights our network lacks");
        ModelWeights.Load(golden with { Tensors = weights }, net.Parameters, net.Buffers, path, requireBuffers: true);
        B.Upload<float>(T("input"), net.Input(batch));
        var labels = B.AllocateTensor(new TensorShape(batch), DType.Int32);
        B.Upload<int>(T("labels").Select(v => (int)v).ToArray(), labels);
        var stats = B.AllocateTensor(new TensorShape(2));
        B.Fill(stats, 0);

        net.ZeroGradients();
        net.Forward(batch, RunMode.Train);
        B.SoftmaxCrossEntropy(net.Logits(batch), labels, net.LogitsGradient(batch), stats);
        net.Backward(batch);

        Close.Check(Get(net.Logits(batch)), T("logits"), 1e-5 * Tol, 1e-4 * Tol, $"{family}: logits");
        Assert.That(Get(stats)[0] / batch, Is.EqualTo(T("loss")[0]).Within(1e-5 * Tol), $"{family}: loss");
        foreach (var e in net.ParameterLayout.Entries)
            Close.Check(Get(net.Gradients[e.Name]), T("grad." + e.Name), 1e-6 * Tol, 1e-3 * Tol, $"{family}: grad.{e.Name}");
        foreach (var e in net.BufferLayout.Entries)
            Close.Check(Get(net.Buffers[e.Name]), T("after." + e.Name), 1e-5 * Tol, 1e-4 * Tol, $"{family}: after.{e.Name}");
    }
}
