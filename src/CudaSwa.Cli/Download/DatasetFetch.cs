using System.Diagnostics;
using Spectre.Console;
using CudaSwa.Data;

namespace CudaSwa.Cli.Download;

/// <summary>
/// Makes a dataset available in a folder: nothing to do when its files are there and read back
/// whole; else download the archive (progress bar on a terminal, a line at most every 10 s
/// otherwise), verify it, unpack it atomically, and delete the archive unless asked to keep it.
/// Used by `cudaswa data download` and by `--data cifar10` when the cache is empty.
/// </summary>
internal static class DatasetFetch
{
    private static readonly TimeSpan LineInterval = TimeSpan.FromSeconds(10);

    /// <summary>The folder holding the dataset's files, inside <paramref name="dir"/>.</summary>
    public static string Ensure(DatasetArchive archive, string dir, CliEnvironment env, bool keepArchive = false, ArchiveDownloader? downloader = null)
    {
        var c = env.Console;
        string folder = Path.Combine(dir, archive.Folder);
        if (IsComplete(folder, archive.Kind))
        {
            c.WriteLine($"{CifarSource.Title(archive.Kind)} is already in {folder} (every file read back whole); nothing to download.");
            return folder;
        }
        c.WriteLine($"Downloading {CifarSource.Title(archive.Kind)} ({ArchiveDownloader.Megabytes(archive.Size)}) from {archive.Url} into {dir}");
        string file = Download(archive, dir, env, downloader ?? ArchiveDownloader.ForTests ?? new ArchiveDownloader());
        c.WriteLine($"verified: MD5 {archive.Md5} as published for {archive.FileName}; unpacking");
        try
        {
            CifarSource.Extract(file, archive.Kind, dir);
        }
        catch (DataFormatException) when (!keepArchive)
        {
            File.Delete(file); // it matched its checksum but cannot be read: keep nothing the next run would trust
            throw;
        }
        if (!keepArchive) File.Delete(file);
        c.WriteLine($"{CifarSource.Title(archive.Kind)} is ready in {folder}{(keepArchive ? $" (archive kept: {file})" : "")}");
        return folder;
    }

    /// <summary>Whether <paramref name="folder"/> holds the dataset whole: every file present and readable as records.</summary>
    public static bool IsComplete(string folder, CifarKind kind)
    {
        if (!Directory.Exists(folder)) return false;
        try
        {
            CifarSource.Load(folder, kind);
            return true;
        }
        catch (DataFormatException)
        {
            return false;
        }
    }

    private static string Download(DatasetArchive archive, string dir, CliEnvironment env, ArchiveDownloader settings)
    {
        var c = env.Console;
        if (env.Interactive)
        {
            string path = "";
            c.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(archive.FileName, maxValue: archive.Size);
                    path = Run(archive, dir, env, settings, (done, _) => task.Value = done, line => c.MarkupLineInterpolated($"[yellow]{line}[/]"));
                });
            return path;
        }
        var clock = Stopwatch.StartNew();
        var since = Stopwatch.StartNew();
        return Run(archive, dir, env, settings, (done, total) =>
        {
            if (since.Elapsed < LineInterval && done < total) return;
            since.Restart();
            double rate = done / Math.Max(clock.Elapsed.TotalSeconds, 1e-3) / 1e6;
            c.WriteLine($"  downloaded {ArchiveDownloader.Megabytes(done)} of {ArchiveDownloader.Megabytes(total)} ({100.0 * done / total:0}%), {rate:0.0} MB/s");
        }, line => c.WriteLine($"  {line}"));
    }

    private static string Run(DatasetArchive archive, string dir, CliEnvironment env, ArchiveDownloader settings, Action<long, long> progress, Action<string> notice)
    {
        var downloader = new ArchiveDownloader
        {
            Retries = settings.Retries, FirstDelay = settings.FirstDelay, StallTimeout = settings.StallTimeout,
            Progress = progress, Notice = notice,
        };
        try
        {
            return downloader.DownloadAsync(archive, dir, env.Cancel.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (env.Cancel.IsCancellationRequested)
        {
            throw new DownloadInterruptedException($"download interrupted; what was fetched is kept in '{Path.Combine(dir, archive.FileName)}.part': run the same command again to continue from there.");
        }
    }
}

/// <summary>Ctrl-C during a download: the partial file is kept to continue from.</summary>
internal sealed class DownloadInterruptedException(string message) : Exception(message);
