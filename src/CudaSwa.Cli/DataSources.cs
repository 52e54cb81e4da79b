using CudaSwa.Data;

namespace CudaSwa.Cli;

/// <summary>Loads the train/test sets a run asks for: the embedded synthetic data or CIFAR binaries, then subsets.</summary>
public static class DataSources
{
    /// <summary>The synthetic data does not change with --seed, so runs with different seeds compare on the same data.</summary>
    public const ulong SyntheticSeed = 20180314;

    /// <summary>Where to get <paramref name="dataset"/> and what --data then names.</summary>
    public static string CifarHint(DatasetKind dataset = DatasetKind.Cifar10) => dataset == DatasetKind.Cifar100
        ? "For real results, download the CIFAR-100 binary version (https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz), " +
          "unpack it and pass --dataset cifar100 --data DIR (the folder with train.bin and test.bin)."
        : "For real results, download the CIFAR-10 binary version (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), " +
          "unpack it and pass --data DIR (the folder with data_batch_1.bin ... test_batch.bin).";

    public static bool IsSynthetic(RunSettings o) => o.DataDir is null;

    /// <param name="forTraining">Check that the training set splits into batches batch norm can train on (not needed to only evaluate).</param>
    public static (ImageDataset Train, ImageDataset Test) Load(RunSettings o, bool forTraining = true)
    {
        ImageDataset train, test;
        if (o.DataDir is null)
        {
            if (o.Dataset == DatasetKind.Cifar100)
                throw new OptionException($"--dataset cifar100 needs --data DIR with the CIFAR-100 binaries (train.bin, test.bin); the embedded synthetic data has 10 classes. {CifarHint(DatasetKind.Cifar100)}");
            (train, test) = SyntheticCifar.Generate(o.SyntheticTrain, o.SyntheticTest, SyntheticSeed);
        }
        else
        {
            try
            {
                (train, test) = CifarBinary.Load(o.DataDir, o.Dataset == DatasetKind.Cifar10 ? CifarKind.Cifar10 : CifarKind.Cifar100);
            }
            catch (DataFormatException e) when (e.Message.StartsWith("Data folder", StringComparison.Ordinal))
            {
                throw new OptionException($"--data: {e.Message}");
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

    public static string Describe(RunSettings o, ImageDataset train, ImageDataset test) => o.DataDir is null
        ? $"embedded synthetic CIFAR-like data ({train.Count:N0} train / {test.Count:N0} test, 10 procedural classes)"
        : $"{o.Dataset} from {o.DataDir} ({train.Count:N0} train / {test.Count:N0} test)";
}
