// Averaging for an app that keeps its parameters in buffers of its own, not in an engine Network:
// MultiBufferAverager keeps SWA (and here also EMA) averages of any list of buffers, each update
// one fused pass over all of them (one kernel launch on a GPU). The app's "training" is noisy SGD
// on a quadratic with a known optimum: the iterates keep bouncing around it, and their SWA average
// lands much closer than the last iterate does, which is the point of averaging.
using CudaSwa.Averaging;
using CudaSwa.Devices;
using CudaSwa.IO;
using CudaSwa.Tensors;

using var backend = BackendFactory.Create("auto", out string note);
Console.WriteLine(note);

string[] names = ["encoder.weight", "encoder.bias", "decoder.weight"];
int[] sizes = [250_000, 37, 4_096];
var random = new Random(5);
float[][] optimum = [.. sizes.Select(n => Enumerable.Range(0, n).Select(_ => (float)random.NextDouble() * 2 - 1).ToArray())];
float[][] weights = [.. sizes.Select(n => new float[n])]; // the app's working copy on the host

// <snippet:own-buffers>
// The app's buffers: the weights it trains, and one average buffer per weight buffer and average.
DeviceBuffer[] current = [.. sizes.Select(n => backend.Allocate(n))];
DeviceBuffer[] swaBuffers = [.. sizes.Select(n => backend.Allocate(n))];
DeviceBuffer[] emaBuffers = [.. sizes.Select(n => backend.Allocate(n))];
AveragePair[] Pairs(DeviceBuffer[] averages) => [.. averages.Select((a, i) => new AveragePair(a.AsTensor(), current[i].AsTensor()))];
// </snippet:own-buffers>

const int steps = 1000;
const float lr = 0.1f, noise = 0.5f;
double[][] hostMean = [.. sizes.Select(n => new double[n])]; // an independent twin of the SWA average
bool ok = true;
try
{
    // <snippet:average-own-buffers>
    using (var swa = new MultiBufferAverager(backend, Pairs(swaBuffers)))
    using (var ema = new MultiBufferAverager(backend, Pairs(emaBuffers), new AveragingOptions { Kind = AveragingKind.Ema, EmaDecay = 0.98 }))
    {
        for (int t = 0; t < steps; t++)
        {
            for (int b = 0; b < weights.Length; b++)
            {
                // One SGD step on 0.5*|w - optimum|^2 with a noisy gradient, then hand the weights to the device.
                for (int i = 0; i < weights[b].Length; i++)
                    weights[b][i] -= lr * (weights[b][i] - optimum[b][i] + noise * (float)(random.NextDouble() * 2 - 1));
                backend.Upload<float>(weights[b], current[b].AsTensor());
            }
            if (t >= steps / 2) // average the second half of the run, as SWA does after its start
            {
                swa.Update(); // w_swa = (w_swa*n + w)/(n+1) over all three buffers in one fused pass
                ema.Update();
                for (int b = 0; b < weights.Length; b++)
                    for (int i = 0; i < weights[b].Length; i++)
                        hostMean[b][i] += (weights[b][i] - hostMean[b][i]) / swa.Count;
            }
        }
        Console.WriteLine($"averaged {swa.Count} iterates (SWA) and {ema.Count} (EMA, decay {ema.Options.EmaDecay})");
    }
    // </snippet:average-own-buffers>

    double Distance(Func<int, float[]> values) =>
        Math.Sqrt(Enumerable.Range(0, sizes.Length).Sum(b => values(b).Zip(optimum[b], (v, o) => (double)(v - o) * (v - o)).Sum()));
    float[][] swaValues = [.. swaBuffers.Select(a => backend.ToArray(a.AsTensor()))];
    float[][] emaValues = [.. emaBuffers.Select(a => backend.ToArray(a.AsTensor()))];
    double last = Distance(b => weights[b]), swaDistance = Distance(b => swaValues[b]), emaDistance = Distance(b => emaValues[b]);
    Console.WriteLine($"distance to the optimum: last iterate {last:F2}, EMA {emaDistance:F2}, SWA {swaDistance:F2}");

    double worst = 0;
    for (int b = 0; b < sizes.Length; b++)
        for (int i = 0; i < sizes[b]; i++)
            worst = Math.Max(worst, Math.Abs(swaValues[b][i] - hostMean[b][i]));
    Console.WriteLine($"SWA on {backend.Name} vs the host's double-precision mean: max |difference| {worst:E2}");
    ok = worst < 1e-5 && swaDistance < last / 3 && emaDistance < last;

    // <snippet:save-own-weights>
    string file = Path.Combine(Path.GetTempPath(), $"byow-swa-{Environment.ProcessId}.safetensors");
    SafeTensors.Write(file, names.Select((name, b) => new SafeTensors.Entry(name, [sizes[b]], swaValues[b])),
        new Dictionary<string, string> { ["averaged_models"] = (steps / 2).ToString() });
    // </snippet:save-own-weights>
    var back = SafeTensors.Read(file);
    ok &= Enumerable.Range(0, names.Length).All(b => back.Tensors[names[b]].Data.AsSpan().SequenceEqual(swaValues[b]));
    Console.WriteLine($"saved {file} ({new FileInfo(file).Length:N0} bytes), read back {(ok ? "identical" : "DIFFERENT")}");
    File.Delete(file);
}
finally
{
    // <snippet:dispose-order>
    // Buffers outlive the averagers that read them (the using blocks above end first), and the
    // backend, declared first with `using var`, outlives everything allocated on it.
    foreach (var buffer in current.Concat(swaBuffers).Concat(emaBuffers)) buffer.Dispose();
    // </snippet:dispose-order>
}
return ok ? 0 : 1;
