using Spectre.Console;
using System.CommandLine;
using CudaSwa.Data;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa synth --out DIR`: the embedded synthetic dataset written as CIFAR-10 binaries.</summary>
public static class SynthCommand
{
    private static readonly Option<string> Out = new("--out") { Description = "Folder to write data_batch_1..5.bin, test_batch.bin and batches.meta.txt into.", Required = true };
    private static readonly Option<int> Train = new("--train") { Description = "Training images.", DefaultValueFactory = _ => new RunSettings().SyntheticTrain };
    private static readonly Option<int> Test = new("--test") { Description = "Test images.", DefaultValueFactory = _ => new RunSettings().SyntheticTest };
    private static readonly Option<ulong> Seed = new("--seed") { Description = "Generator seed (train uses the same one by default).", DefaultValueFactory = _ => DataSources.SyntheticSeed };

    public static Command Create(CliEnvironment env)
    {
        var cmd = new Command("synth", "Write the embedded synthetic CIFAR-like dataset in the CIFAR-10 binary format.");
        cmd.Options.Add(Out);
        cmd.Options.Add(Train);
        cmd.Options.Add(Test);
        cmd.Options.Add(Seed);
        cmd.SetAction(p =>
        {
            string dir = p.GetValue(Out)!;
            int train = p.GetValue(Train), test = p.GetValue(Test);
            if (train < SyntheticCifar.Classes || test < SyntheticCifar.Classes)
                throw new OptionException($"--train and --test need at least {SyntheticCifar.Classes} images each; got {train} and {test}.");
            if (train > RunSettings.MaxSynthetic || test > RunSettings.MaxSynthetic)
                throw new OptionException($"--train and --test hold at most {RunSettings.MaxSynthetic:N0} images each; got {train:N0} and {test:N0}.");
            if (string.IsNullOrWhiteSpace(dir)) throw new OptionException("--out: the folder name is empty.");
            if (File.Exists(dir)) throw new OptionException($"--out {dir} is a file, not a folder.");
            Output.RunFolder.Create(dir, "--out");
            var (tr, te) = SyntheticCifar.Generate(train, test, p.GetValue(Seed));
            try
            {
                CifarBinary.WriteCifar10(dir, tr, te, SyntheticCifar.ClassNames);
            }
            catch (Exception e) when (e is UnauthorizedAccessException || (e is IOException io && !Resources.IsDiskFull(io)))
            {
                throw new OptionException($"--out {dir}: the files cannot be written ({e.Message}).");
            }
            env.Console.WriteLine($"wrote {train:N0} training and {test:N0} test images as CIFAR-10 binaries to {Path.GetFullPath(dir)}");
            env.Console.WriteLine($"train on them with: cudaswa train --data {dir}");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
