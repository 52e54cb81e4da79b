using Spectre.Console;
using CudaSwa.Cli.Download;
using CudaSwa.Data;

namespace CudaSwa.Cli;

/// <summary>Loads the train/test sets a run asks for: the embedded synthetic data or CIFAR binaries, then subsets.</summary>
public static class DataSources
{
    /// <summary>The synthetic data does not change with --seed, so runs with different seeds compare on the same data.</summary>
    public const ulong SyntheticSeed = 20180314;

    /// <summary>Where to get <paramref name="dataset"/> and what --data then names.</summary>
    public static string CifarHint(DatasetKind dataset = DatasetKind.Cifar10) => dataset == DatasetKind.Cifar100
        ? "For real results: `cudaswa data download cifar100`, then --dataset cifar100 --data cifar100 " +
          "(or --data DIR: a folder of the binary or python version, or its .tar.gz)."
        : "For real results: `cudaswa data download cifar10`, then --data cifar10 " +
          "(or --data DIR: a folder of the binary or python version, or its .tar.gz).";

    public static bool IsSynthetic(RunSettings o) => o.DataDir is null;

    /// <param name="forTraining">Check that the training set splits into batches batch norm can train on (not needed to only evaluate).</param>
    /// <param name="env">Where a download of a dataset named by --data (cifar10, cifar100) reports progress; without it a missing dataset is an error.</param>
    public static (ImageDataset Train, ImageDataset Test) Load(RunSettings o, bool forTraining = true, CliEnvironment? env = null)
    {
        ImageDataset train, test;
        if (o.DataDir is null)
        {
            if (o.Dataset == DatasetKind.Cifar100)
                throw new OptionException($"--dataset cifar100 needs --data: the embedded synthetic data has 10 classes. {CifarHint(DatasetKind.Cifar100)}");
            (train, test) = SyntheticCifar.Generate(o.SyntheticTrain, o.SyntheticTest, SyntheticSeed);
        }
        else
        {
            var kind = o.Dataset == DatasetKind.Cifar10 ? CifarKind.Cifar10 : CifarKind.Cifar100;
            string path = ResolveData(o.DataDir, kind, env);
            try
            {
                (train, test) = CifarSource.Load(path, kind);
            }
            catch (DataFormatException e) when (e.Message.StartsWith("Data folder", StringComparison.Ordinal) || e.Message.StartsWith("Data path", StringComparison.Ordinal))
            {
                throw new OptionException($"--data: {e.Message} {CifarHint(o.Dataset)}");
            }
        }
        if (o.TrainSubset is int ts)
        {
            if (ts > train.Count) throw new OptionException($"--train-subset: {ts} is more than the {train.Count} training images.");
            train = train.Subset(ts, o.Training.Seed);
        }
        if (o.TestSubset is int vs)
        {
            if (vs > test.Count) throw new OptionException($"--test-subset: {vs} is more than the {test.Count} test images.");
            test = test.Subset(vs, o.Training.Seed ^ 0x7E57);
        }
        if (forTraining && train.Count % o.Training.BatchSize == 1)
            throw new OptionException($"{train.Count} training images in batches of {o.Training.BatchSize} leave a last batch of 1 image, which batch norm cannot train on; choose another --batch or --train-subset.");
        return (train, test);
    }

    /// <summary>
    /// What --data names: a path as given, or, for a dataset name (cifar10, cifar100) that is not a
    /// path here, that dataset's folder in the data cache, downloaded first when it is not there.
    /// </summary>
    public static string ResolveData(string data, CifarKind kind, CliEnvironment? env)
    {
        if (Directory.Exists(data) || File.Exists(data) || DatasetArchive.Find(data) is not { } named) return data;
        if (named.Kind != kind)
            throw new OptionException($"--data {data} names {CifarSource.Title(named.Kind)}, but --dataset is {(kind == CifarKind.Cifar10 ? "cifar10" : "cifar100")}: " +
                                      $"add --dataset {named.Name}.");
        var vars = env?.Variables ?? Environment.GetEnvironmentVariable;
        string root = DataCache.Root(vars);
        string folder = Path.Combine(root, named.Folder);
        if (DatasetFetch.IsComplete(folder, kind)) return folder;
        if (env is null)
            throw new OptionException($"--data {data}: {CifarSource.Title(kind)} is not in the data cache ({root}); run `cudaswa data download {named.Name}` first.");
        env.Console.WriteLine($"--data {data}: {CifarSource.Title(kind)} is not in the data cache yet; downloading it (once).");
        return DatasetFetch.Ensure(named, root, env);
    }

    public static string Describe(RunSettings o, ImageDataset train, ImageDataset test) => o.DataDir is null
        ? $"embedded synthetic CIFAR-like data ({train.Count:N0} train / {test.Count:N0} test, 10 procedural classes)"
        : $"{o.Dataset} from {o.DataDir} ({train.Count:N0} train / {test.Count:N0} test)";
}
