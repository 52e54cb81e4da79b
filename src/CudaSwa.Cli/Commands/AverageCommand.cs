using Spectre.Console;
using System.CommandLine;
using System.Text.Json.Nodes;
using CudaSwa.Averaging;
using CudaSwa.Cli.Options;
using CudaSwa.Data;
using CudaSwa.IO;
using CudaSwa.Models;
using CudaSwa.Tensors;
using CudaSwa.Training;

namespace CudaSwa.Cli.Commands;

/// <summary>
/// `cudaswa average`: post-hoc SWA of saved weights (<see cref="PostHocAverage"/>): the average, its
/// BN statistics recomputed over the training data, its test numbers, written as safetensors that
/// name their sources and record the recompute (so `cudaswa eval --bn-recompute` repeats it).
/// </summary>
public static class AverageCommand
{
    private static readonly Option<string[]> Weights = new("--weights")
    {
        Description = "The weights files to average, in order (e.g. a run's epochs/epoch-NNNN.safetensors from train --save-epoch-weights).",
        Required = true, AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.OneOrMore, HelpName = "FILES",
    };
    private static readonly Option<string> Out = new("--out") { Description = "The averaged weights file to write (safetensors).", Required = true, HelpName = "FILE" };

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("average", "Average saved weights after the fact (post-hoc SWA), recompute their BN statistics, evaluate and write them.");
        var shared = new Setting[] { SettingsTable.Model, SettingsTable.Dataset, SettingsTable.Data, SettingsTable.Batch, SettingsTable.BnRecompute, SettingsTable.Padding,
            SettingsTable.Seed, SettingsTable.Device, SettingsTable.SyntheticTrain, SettingsTable.SyntheticTest, SettingsTable.TrainSubset, SettingsTable.TestSubset };
        cmd.Options.Add(Weights);
        cmd.Options.Add(Out);
        foreach (var o in shared.SelectMany(s => s.Options)) cmd.Options.Add(o);
        cmd.SetAction(p => Execute(p, shared, env));
        return cmd;
    }

    private static int Execute(ParseResult p, Setting[] shared, CliEnvironment env)
    {
        string[] files = p.GetValue(Weights)!;
        string output = p.GetValue(Out)!;
        if (Directory.Exists(output)) throw new OptionException($"--out: '{output}' is a folder; give the file to write, e.g. {Path.Combine(output, "average.safetensors")}.");
        foreach (var f in files)
            if (!File.Exists(f)) throw new OptionException($"--weights: '{f}' does not exist{(Directory.Exists(f) ? " as a file (it is a folder)" : "")}.");
        // The model: --model, else what the first file's metadata names.
        var first = SafeTensors.Read(files[0]);
        string? model = SettingsTable.Model.Get(p) ?? first.Metadata.GetValueOrDefault("model");
        if (model is null) throw new OptionException($"--model: '{files[0]}' does not name its model in its metadata; give --model.");
        var settings = SettingsTable.Apply(p, new RunSettings { Training = new TrainingOptions { Model = model, SgdOnly = true, SwaStart = null, SwaLr = null } }, shared);
        settings.Validate();
        var options = settings.Training;
        bool recompute = options.BnRecompute is not null;
        var pass = options.BnRecomputePass(epochKey: 0);

        var (train, test) = DataSources.Load(settings, forTraining: false, env);
        if (train.NumClasses != settings.NumClasses)
            throw new OptionException($"--dataset: the data has {train.NumClasses} classes, {settings.Dataset} has {settings.NumClasses}.");
        if (recompute && train.Count % pass.BatchSize == 1)
            throw new OptionException($"--batch {pass.BatchSize} leaves a last batch of 1 of the {train.Count} training images, which a BN recompute cannot use; choose another --batch.");
        using var backend = DeviceChoice.Open(settings.Device, false, out string deviceDescription);
        using var net = ModelZoo.Create(model, settings.NumClasses, backend, options.BatchSize, options.Seed);
        env.Console.WriteLine($"cudaswa average: {files.Length} file(s) of {model}; {deviceDescription}; {DataSources.Describe(settings, train, test)}");
        DeviceChoice.ForwardNotices(backend, m => env.Console.WriteLine(m));
        using var average = PostHocAverage.Average(net, files, averageStatistics: !recompute,
            (done, all) => env.Console.WriteLine($"  averaged {done}/{all}: {files[done - 1]}"));
        using var bound = average.Bind();
        var meta = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["producer"] = "cudaswa",
            ["model"] = model,
            ["classes"] = net.NumClasses.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["content"] = $"SWA average of {files.Length} models (post hoc)",
            ["sources"] = new JsonArray([.. files.Select(f => (JsonNode)Path.GetFullPath(f))]).ToJsonString(),
        };
        if (recompute)
        {
            using var trainData = new DeviceDataset(train, backend);
            using var loader = pass.CreateLoader(trainData);
            pass.Run(net, loader);
            meta["bn_statistics"] = $"recomputed ({pass.Mode}) for the average of {files.Length} models";
            pass.WriteTo(meta);
            env.Console.WriteLine($"recomputed BN statistics over {train.Count:N0} training images ({pass.Describe()})");
        }
        else meta["bn_statistics"] = "averaged with the weights";
        Output.TestSetReport.EvaluateAndPrint(net, test, options.BatchSize, $"average of {files.Length}", env);
        ModelWeights.Save(output, net, meta);
        env.Console.WriteLine($"wrote {Path.GetFullPath(output)}");
        return ExitCodes.Ok;
    }
}
