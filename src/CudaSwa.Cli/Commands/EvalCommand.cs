using Spectre.Console;
using System.CommandLine;
using CudaSwa.Averaging;
using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Training;

using CudaSwa.Cli.Options;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa eval`: test loss and accuracy of a weights file, optionally after recomputing its BN statistics.</summary>
public static class EvalCommand
{
    private static readonly Option<string> Weights = new("--weights") { Description = "A model.safetensors / swa.safetensors written by cudaswa train (or a PyTorch state_dict saved as safetensors).", Required = true };
    private static readonly Option<string?> Model = new("--model") { Description = "The model the weights belong to (default: the one the file's metadata names, as cudaswa writes it)." };
    private static readonly Option<bool> BnRecompute = new("--bn-recompute") { Description = "Recompute BN statistics on the training set first: as the run did when the weights record its recompute (a run's swa.safetensors: the same mode, batches and order, so the run's SWA row is reproduced), else exact population statistics." };
    private static readonly Option<bool> RecomputeBnOld = new("--recompute-bn") { Description = "The earlier spelling of --bn-recompute.", Hidden = true };
    private static readonly Option<int> Batch = new("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 256 };
    private static readonly Option<bool> AllowNonFinite = new("--allow-nonfinite") { Description = "Evaluate weights that hold NaN or Inf anyway (refused by default)." };

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("eval", "Evaluate a weights file on the test set.");
        foreach (var o in new Option[] { Weights, Model, SettingsTable.Dataset.Option, SettingsTable.Data.Option, BnRecompute, RecomputeBnOld, SettingsTable.Device.Option, Batch, SettingsTable.TestSubset.Option, AllowNonFinite }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            string path = p.GetValue(Weights)!;
            if (Directory.Exists(path)) throw new OptionException($"--weights: '{path}' is a folder; pass a weights file such as {Path.Combine(path, Checkpoint.SwaFile)}.");
            if (!File.Exists(path)) throw new OptionException($"--weights: '{path}' does not exist.");
            var contents = SafeTensors.Read(path);
            var settings = SettingsTable.Apply(p, new RunSettings
            {
                Dataset = RecordedDataset(contents) ?? DatasetKind.Cifar10,
                Training = new TrainingOptions { Model = ModelOf(p.GetValue(Model), contents, path), BatchSize = p.GetValue(Batch), SgdOnly = true, SwaStart = null, SwaLr = null },
            }, SettingsTable.Dataset, SettingsTable.Data, SettingsTable.TestSubset, SettingsTable.Device);
            settings.Validate();
            var options = settings.Training;
            if (!p.GetValue(AllowNonFinite))
                foreach (var t in contents.Tensors.Values)
                {
                    int bad = Array.FindIndex(t.Data, v => !float.IsFinite(v));
                    if (bad >= 0)
                        throw new DataFormatException($"--weights: '{path}': tensor '{t.Name}' holds {t.Data[bad]} at element {bad}: these weights come from a diverged run " +
                            "and cannot be evaluated meaningfully (pass --allow-nonfinite to evaluate them anyway).");
                }
            bool recompute = p.GetValue(BnRecompute) || p.GetValue(RecomputeBnOld);
            // Weights whose BN statistics a run recomputed say exactly how: repeat that pass, so the
            // result is the run's own. Other weights get the default pass over the training data.
            var recorded = BatchNormRecomputePass.ReadFrom(contents.Metadata, path);
            var pass = recorded ?? new BatchNormRecomputePass(BatchNormRecomputeMode.Exact, options.BatchSize, PaddingMode.Zero, options.Seed, EpochKey: 0);
            var (train, test) = DataSources.Load(settings, forTraining: false, env);
            if (recompute && train.Count % pass.BatchSize == 1)
                throw new OptionException(recorded is null
                    ? $"--batch {pass.BatchSize} leaves a last batch of 1 of the {train.Count} training images, which a BN recompute cannot use; choose another --batch."
                    : $"--bn-recompute: the run's recompute used batches of {pass.BatchSize}, which leave a last batch of 1 of these {train.Count} training images; is --data the run's training data?");
            using var backend = DeviceChoice.Open(settings.Device, false, out string deviceDescription);
            using var net = ModelZoo.Create(options.Model, settings.NumClasses, backend, options.BatchSize);
            ModelWeights.Load(contents, net.Parameters, net.Buffers, path, requireBuffers: !recompute);
            env.Console.WriteLine($"cudaswa eval: {deviceDescription}; {DataSources.Describe(settings, train, test)}");
            DeviceChoice.ForwardNotices(backend, m => env.Console.WriteLine(m));
            if (recompute)
            {
                using var trainData = new DeviceDataset(train, backend);
                using var loader = pass.CreateLoader(trainData);
                pass.Run(net, loader);
                env.Console.WriteLine($"recomputed BN statistics over {train.Count:N0} training images " +
                    (recorded is null ? $"({pass.Describe()}; the weights record no recompute of their own)" : $"as the run did ({pass.Describe()})"));
            }
            Output.TestSetReport.EvaluateAndPrint(net, test, options.BatchSize, Path.GetFileName(path), env);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The model to build: --model, else the one the file's metadata names; a --model that contradicts the metadata is refused.</summary>
    private static string ModelOf(string? given, SafeTensors.Contents contents, string path)
    {
        string? recorded = contents.Metadata.GetValueOrDefault("model");
        if (given is not null && recorded is not null && !string.Equals(given, recorded, StringComparison.OrdinalIgnoreCase))
            throw new OptionException($"--model {given}: '{path}' holds {recorded} weights (its metadata says so); pass --model {recorded}, or leave --model out.");
        return given ?? recorded ?? throw new OptionException(
            $"--model: '{path}' does not name its model in its metadata (files written by PyTorch name none); pass --model NAME ({string.Join(", ", ModelZoo.Models.Select(m => m.Name))}).");
    }

    /// <summary>The dataset the file's class count implies ("classes" metadata, written by cudaswa), or null where it records none.</summary>
    private static DatasetKind? RecordedDataset(SafeTensors.Contents contents) => contents.Metadata.GetValueOrDefault("classes") switch
    {
        "10" => DatasetKind.Cifar10,
        "100" => DatasetKind.Cifar100,
        _ => null,
    };
}
