using Spectre.Console;
using System.CommandLine;
using CudaSwa.Cli.Download;
using CudaSwa.Data;

namespace CudaSwa.Cli.Commands;

/// <summary>`cudaswa data download cifar10|cifar100 [--dir DIR]`: the official dataset, verified, in the cache (or DIR).</summary>
public static class DataCommand
{
    public static Command Create(CliEnvironment env)
    {
        var data = new Command("data", "Datasets: download CIFAR-10 or CIFAR-100 into the data cache (or a folder).");
        data.Subcommands.Add(CreateDownload(env));
        return data;
    }

    private static Command CreateDownload(CliEnvironment env)
    {
        var name = new Argument<string>("DATASET") { Description = "cifar10 or cifar100." };
        name.AcceptOnlyFromAmong("cifar10", "cifar100");
        var dir = new Option<string>("--dir") { Description = $"Folder to download and unpack into. Default: the data cache ({DataCache.Described}), which --data cifar10 reads.", HelpName = "DIR" };
        var keep = new Option<bool>("--keep-archive") { Description = "Keep the verified .tar.gz after unpacking it (deleted by default: the unpacked files are all cudaswa reads)." };
        var cmd = new Command("download",
            "Download the binary version of CIFAR-10 (162 MB) or CIFAR-100 (161 MB) from the dataset's page (https://www.cs.toronto.edu/~kriz/cifar.html), " +
            "verify it against the MD5 published there, and unpack it. An interrupted download continues where it stopped when run again; " +
            "a dataset already there is not downloaded again. Then train with `cudaswa train --data cifar10` (or --data DIR/cifar-10-batches-bin).");
        cmd.Arguments.Add(name);
        cmd.Options.Add(dir);
        cmd.Options.Add(keep);
        cmd.SetAction(p =>
        {
            var archive = DatasetArchive.Find(p.GetValue(name)!)!;
            string target = p.GetValue(dir) is { } d ? d : DataCache.Root(env.Variables);
            if (string.IsNullOrWhiteSpace(target)) throw new OptionException("--dir: the folder name is empty.");
            if (File.Exists(target)) throw new OptionException($"--dir {target} is a file, not a folder.");
            try
            {
                string folder = DatasetFetch.Ensure(archive, target, env, p.GetValue(keep));
                string flag = archive.Kind == CifarKind.Cifar100 ? " --dataset cifar100" : "";
                string data = p.GetValue(dir) is null ? archive.Name : folder;
                env.Console.WriteLine($"train on it with: cudaswa train{flag} --data {data}");
                return ExitCodes.Ok;
            }
            catch (DownloadInterruptedException e)
            {
                env.Error.WriteLine(e.Message);
                return ExitCodes.Interrupted;
            }
            catch (UnauthorizedAccessException e)
            {
                throw new OptionException($"--dir {target}: cannot write there ({e.Message}).");
            }
        });
        return cmd;
    }
}
