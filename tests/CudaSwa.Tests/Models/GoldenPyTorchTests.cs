using CudaSwa.Cpu;
using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Models;

/// <summary>
/// Golden test against PyTorch: tests/golden/make_golden.py built resnet8 in PyTorch 1.13 with
/// the same state_dict names, ran one training-mode forward/backward on a fixed batch and stored
/// weights, input, logits, loss, every gradient and the updated BN statistics. We load the same
/// weights and must reproduce all of them. The batch keeps every ReLU input at least 1e-5 from
/// zero (see the script), so both sides take the same ReLU branches. Tolerance: float32 with
/// different summation orders (oneDNN vs our GEMM) through 8 layers: logits, loss and BN
/// statistics to 1e-5 abs + 1e-4 rel, gradients to 1e-6 abs + 1e-3 rel on the CPU; on a GPU
/// (TF32 off: exact float32, cuDNN's implicit GEMM and cuBLAS summing in yet other orders) four
/// times those (Tol).
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class GoldenPyTorchTests(string backend) : BackendTest(backend)
{
    [Test]
    public void Resnet8MatchesPyTorchLogitsLossGradientsAndRunningStats()
    {
        string path = Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "resnet8_golden.safetensors");
        var golden = SafeTensors.Read(path);
        float[] T(string name) => golden.Tensors[name].Data;

        int batch = golden.Tensors["input"].Shape[0];
        using var net = ModelZoo.Create("resnet8", 10, B, batch);
        // The fixture also holds inputs and expected outputs; load only the model's own tensors.
        var weights = golden.Tensors.Where(kv => net.ParameterLayout.TryIndexOf(kv.Key, out _) || net.BufferLayout.TryIndexOf(kv.Key, out _)).ToDictionary();
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

        Close.Check(Get(net.Logits(batch)), T("logits"), 1e-5 * Tol, 1e-4 * Tol, "logits");
        Assert.That(Get(stats)[0] / batch, Is.EqualTo(T("loss")[0]).Within(1e-5 * Tol), "loss");
        foreach (var e in net.ParameterLayout.Entries)
            Close.Check(Get(net.Gradients[e.Name]), T("grad." + e.Name), 1e-6 * Tol, 1e-3 * Tol, "grad." + e.Name);
        foreach (var e in net.BufferLayout.Entries)
            Close.Check(Get(net.Buffers[e.Name]), T("after." + e.Name), 1e-5 * Tol, 1e-4 * Tol, "after." + e.Name);
    }
}
