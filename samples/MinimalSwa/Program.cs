// The shortest honest SWA program: pick a backend, build ResNet-20, train it with SGD on the
// embedded synthetic CIFAR-like data, average the weights of the last epochs, recompute the
// averaged model's BatchNorm statistics, and compare SGD with SWA on the test set.
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.Devices;
using CudaSwa.Evaluation;
using CudaSwa.Models;
using CudaSwa.Optim;
using CudaSwa.Tensors;
using CudaSwa.Training;

// <snippet:backend>
using var backend = BackendFactory.Create("auto", out string note); // CUDA when it works, else the CPU, saying why
Console.WriteLine(note);
// </snippet:backend>

const int batch = 100, epochs = 6, swaStart = 4;
var (train, test) = SyntheticCifar.Generate(trainCount: 4000, testCount: 1000, seed: 7);
using var trainData = new DeviceDataset(train, backend); // images stay on the device as uint8
using var testData = new DeviceDataset(test, backend);
var augment = new AugmentSpec(); // pad 4, random crop, random flip, CIFAR normalisation
using var trainLoader = new BatchLoader(trainData, batch, shuffle: true, augment, seed: 1);
using var testLoader = new BatchLoader(testData, batch, shuffle: false, augment.ForEvaluation(), seed: 1);

// <snippet:train-and-average>
using var net = ModelZoo.Create("resnet20", train.NumClasses, backend, batch, seed: 1);
using var sgd = new Sgd(net, momentum: 0.9f, weightDecay: 5e-4f);
using var step = new TrainingStep(net, sgd);
using var swa = new WeightAverager(net); // the running mean of the parameter arena, one fused pass per update
var schedule = new SwaPaperSchedule(lrInit: 0.05, epochs, swaStart, swaLr: 0.01);
ulong steps = 0;
for (int epoch = 0; epoch < epochs; epoch++)
{
    trainLoader.BeginEpoch(epoch);
    for (int i = 0; i < trainLoader.BatchCount; i++)
    {
        int n = trainLoader.Load(i, net.Input(batch), step.Labels);
        step.Run(n, (float)schedule.At(epoch, i, trainLoader.BatchCount), steps++);
    }
    if (epoch + 1 >= swaStart) swa.Update(); // average the models of the last epochs
}
// </snippet:train-and-average>

using var evaluator = new Evaluator(net);
var (sgdLoss, sgdAccuracy) = evaluator.Evaluate(testLoader);

// <snippet:evaluate-swa>
// The averaged weights need BN statistics of their own: bind them to the network, recompute, evaluate.
double swaLoss, swaAccuracy;
using (swa.Bind())
{
    BatchNormRecompute.Run(net, trainLoader, epochKey: epochs);
    (swaLoss, swaAccuracy) = evaluator.Evaluate(testLoader);
}
// </snippet:evaluate-swa>

Console.WriteLine($"SGD: test accuracy {100 * sgdAccuracy:F2}%, loss {sgdLoss:F4}");
Console.WriteLine($"SWA: test accuracy {100 * swaAccuracy:F2}%, loss {swaLoss:F4} (average of {swa.Count} models)");
return double.IsFinite(sgdLoss) && double.IsFinite(swaLoss) && swa.Count == epochs - swaStart + 1 ? 0 : 1;
