// A network of your own, trained by the engine's Trainer: describe it layer by layer with
// NetworkBuilder (parameters get PyTorch state_dict names), hand it to Trainer.ForNetwork, follow
// the run through typed events, and save the SWA model as a .safetensors file PyTorch can load.
using CudaSwa.Data;
using CudaSwa.Devices;
using CudaSwa.IO;
using CudaSwa.Layers;
using CudaSwa.Training;

using var backend = BackendFactory.Create("auto", out string note);
Console.WriteLine(note);

// <snippet:describe-network>
// conv-bn-relu, two residual blocks, pooling, a linear classifier: named like a PyTorch module tree.
static NetworkBuilder TinyResNet(int numClasses)
{
    var b = new NetworkBuilder("tiny-resnet");
    Node ConvBn(Node x, string name, int channels, int stride) =>
        b.BatchNorm(b.Conv(x, $"{name}.conv", channels, kernel: 3, stride, padding: 1), $"{name}.bn");
    Node x = b.Relu(ConvBn(b.Input, "stem", 16, stride: 1));
    for (int i = 0; i < 2; i++)
    {
        Node y = b.Relu(ConvBn(x, $"blocks.{i}.a", 16, stride: 1));
        x = b.Relu(b.Add(ConvBn(y, $"blocks.{i}.b", 16, stride: 1), x)); // residual connection
    }
    x = b.MaxPool(x);
    x = b.GlobalAvgPool(b.Relu(ConvBn(x, "head", 32, stride: 1)));
    b.Linear(x, "fc", numClasses);
    return b;
}
// </snippet:describe-network>

var (train, test) = SyntheticCifar.Generate(trainCount: 3000, testCount: 600, seed: 11);
string runDir = Path.Combine(Path.GetTempPath(), $"cudaswa-custom-network-{Environment.ProcessId}");

// <snippet:trainer-events>
var options = new TrainingOptions { Model = "tiny-resnet", Epochs = 5, SwaStart = 3, BatchSize = 100, Lr = 0.05, SwaLr = 0.02 };
var events = new TrainerEvents
{
    EpochStarted = e => Console.Write($"epoch {e.Epoch + 1}/{options.Epochs} "),
    BatchCompleted = b => { if (b.Batch % 10 == 0) Console.Write('.'); },
    EpochCompleted = r => Console.WriteLine(
        $" train loss {r.TrainLoss:F3}, test {100 * r.Trained?.Accuracy:F1}%" +
        (r.Average is { } swa ? $", {swa.Name} of {r.AveragedModels} models {100 * swa.Accuracy:F1}%" : "")),
    Message = Console.WriteLine,
};
using var trainer = Trainer.ForNetwork(options, TinyResNet, backend, train, test, outDir: runDir, events);
foreach (string line in trainer.Describe()) Console.WriteLine(line);
// </snippet:trainer-events>

// <snippet:cancel-from-another-thread>
// Ctrl+C arrives on another thread: it only flips the token. The training thread notices between
// steps, writes a mid-epoch checkpoint and returns Interrupted; Resume continues from it exactly.
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
RunOutcome outcome = trainer.Run(stop.Token); // checkpoints into runDir after every epoch
if (outcome == RunOutcome.Interrupted) Console.WriteLine($"interrupted; resume from {runDir}");
// </snippet:cancel-from-another-thread>

foreach (var row in trainer.FinalResults())
    Console.WriteLine($"{row.Method,-10} {(row.TestAccuracy is double a ? $"{100 * a:F2}%" : "-"),8}  {row.Note}");

// The run folder holds swa.safetensors (the averaged weights with their recomputed BN statistics).
string swaFile = Path.Combine(runDir, "swa.safetensors");
var saved = SafeTensors.Read(swaFile);
Console.WriteLine($"{swaFile}: {saved.Tensors.Count} tensors, e.g. {string.Join(", ", saved.Tensors.Keys.Order().Take(3))}");
bool ok = outcome == RunOutcome.Completed && saved.Tensors.ContainsKey("fc.weight") && saved.Tensors.ContainsKey("blocks.1.b.bn.running_var");
Directory.Delete(runDir, recursive: true);
return ok ? 0 : 1;
