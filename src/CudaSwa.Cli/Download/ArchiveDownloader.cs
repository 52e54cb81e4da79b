using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Polly;
using Polly.Retry;
using CudaSwa.Data;

namespace CudaSwa.Cli.Download;

/// <summary>
/// Fetches a <see cref="DatasetArchive"/> into a folder: into <c>NAME.part</c>, continuing a partial
/// file with an HTTP range request (after a broken connection within the run, and across runs), with
/// retries and exponential back-off (Polly), then checks size and MD5 and only then renames the file
/// to its name. A checksum mismatch deletes the partial file: nothing unverified is ever left under
/// the archive's name. The .part file is held open exclusively, so two downloads into the same
/// folder cannot interleave.
/// </summary>
internal sealed class ArchiveDownloader
{
    private static readonly HttpClient s_http = new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(30), AutomaticDecompression = DecompressionMethods.None })
    {
        Timeout = Timeout.InfiniteTimeSpan, // a stalled body is caught per read (StallTimeout); the whole download may take long
        DefaultRequestHeaders = { UserAgent = { new ProductInfoHeaderValue("cudaswa", typeof(ArchiveDownloader).Assembly.GetName().Version?.ToString(3)) } },
    };

    private static readonly AsyncLocal<ArchiveDownloader?> s_forTests = new();

    /// <summary>Tests only: retry timing to use instead of the defaults (milliseconds, not seconds), for the calling flow.</summary>
    internal static ArchiveDownloader? ForTests { get => s_forTests.Value; set => s_forTests.Value = value; }

    /// <summary>Attempts after the first; each continues where the previous one broke off.</summary>
    public int Retries { get; init; } = 6;
    /// <summary>The first wait before a retry; it doubles each time (with jitter).</summary>
    public TimeSpan FirstDelay { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>How long a read may wait for bytes before the connection counts as broken.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Bytes so far and the total, after every chunk.</summary>
    public Action<long, long>? Progress { get; init; }
    /// <summary>One line for each retry: what broke and when it tries again.</summary>
    public Action<string>? Notice { get; init; }

    /// <summary>
    /// Downloads <paramref name="archive"/> into <paramref name="dir"/> and returns the verified file's path
    /// (at once when a verified copy is already there). Throws <see cref="DataFormatException"/> on a
    /// checksum or size mismatch (the partial file deleted), <see cref="DownloadFailedException"/> when the
    /// server refuses or the retries run out (the partial file kept for the next try).
    /// </summary>
    public async Task<string> DownloadAsync(DatasetArchive archive, string dir, CancellationToken cancel)
    {
        Directory.CreateDirectory(dir);
        string final = Path.Combine(dir, archive.FileName);
        if (File.Exists(final) && new FileInfo(final).Length == archive.Size && Md5Of(final) == archive.Md5)
            return final;
        string partial = final + ".part";
        FileStream part;
        try
        {
            part = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (!Resources.IsDiskFull(e))
        {
            throw new DownloadFailedException($"'{partial}' is in use: another cudaswa is downloading {archive.Name} into {dir}. Wait for it, or download into another --dir.");
        }
        string? failure = null;
        long fetched = 0;
        using (part)
        {
            var builder = new ResiliencePipelineBuilder();
            if (Retries > 0) builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder()
                    .Handle<HttpRequestException>(e => e.StatusCode is null || IsTransient(e.StatusCode.Value))
                    .Handle<IOException>(e => !Resources.IsDiskFull(e))
                    .Handle<TimeoutException>(),
                MaxRetryAttempts = Retries,
                Delay = FirstDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                OnRetry = args =>
                {
                    string what = part.Length > 0 ? $"broke off at {Megabytes(part.Length)}" : "failed";
                    Notice?.Invoke($"download of {archive.FileName} {what} ({args.Outcome.Exception?.Message}); " +
                                   $"trying again in {args.RetryDelay.TotalSeconds:0.#} s (retry {args.AttemptNumber + 1} of {Retries})");
                    return default;
                },
            });
            var pipeline = builder.Build();
            try
            {
                await pipeline.ExecuteAsync(async token => await AttemptAsync(archive, part, token), cancel);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TimeoutException && !(e is IOException io && Resources.IsDiskFull(io)))
            {
                fetched = part.Length;
                failure = $"downloading {archive.Url} failed: {e.Message.TrimEnd('.')}.";
            }
        }
        if (failure is not null)
        {
            if (fetched > 0)
                throw new DownloadFailedException($"{failure} {Megabytes(fetched)} of {Megabytes(archive.Size)} are kept in '{partial}'; run the same command again to continue from there.");
            File.Delete(partial);
            throw new DownloadFailedException($"{failure} Nothing was fetched: check the network, or download {archive.Url} another way and pass the .tar.gz to --data.");
        }
        string actual = Md5Of(partial);
        long length = new FileInfo(partial).Length;
        if (length != archive.Size || actual != archive.Md5)
        {
            File.Delete(partial);
            throw new DataFormatException($"the download of {archive.Url} does not match the dataset's published checksum " +
                                          $"(MD5 {actual}, {length:N0} bytes; expected {archive.Md5}, {archive.Size:N0} bytes). It was deleted; nothing was kept. " +
                                          "Try again later, or download it by hand and pass the .tar.gz to --data.");
        }
        File.Move(partial, final, overwrite: true);
        return final;
    }

    /// <summary>One request: continue the partial file from its length (a range request), or start over when the server sends the whole file.</summary>
    private async ValueTask AttemptAsync(DatasetArchive archive, FileStream part, CancellationToken cancel)
    {
        long have = part.Length;
        if (have >= archive.Size)
        {
            if (have == archive.Size) return; // complete: the checksum decides
            part.SetLength(0); have = 0;       // longer than the archive: not ours
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, archive.Url);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        using var response = await s_http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            part.SetLength(0);
            throw new IOException("the server refused to continue the partial file; starting over");
        }
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"the server answered {(int)response.StatusCode} {response.ReasonPhrase}.", null, response.StatusCode);
        if (response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From == have)
            part.Position = have;
        else
        {
            part.SetLength(0); // the server sent the whole file (or another range): start over
            have = 0;
        }
        await using var body = await response.Content.ReadAsStreamAsync(cancel);
        var buffer = new byte[1 << 20];
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        while (true)
        {
            stall.CancelAfter(StallTimeout);
            int n;
            try
            {
                n = await body.ReadAsync(buffer, stall.Token);
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                throw new TimeoutException($"no data for {StallTimeout.TotalSeconds:0} s");
            }
            if (n == 0) break;
            await part.WriteAsync(buffer.AsMemory(0, n), cancel);
            have += n;
            Progress?.Invoke(have, archive.Size);
        }
        await part.FlushAsync(cancel);
        if (have < archive.Size)
            throw new IOException($"the connection closed after {Megabytes(have)} of {Megabytes(archive.Size)}");
    }

    private static bool IsTransient(HttpStatusCode code) =>
        code is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)code >= 500;

    /// <summary>The file's MD5 as lowercase hex (the form dataset pages print).</summary>
    public static string Md5Of(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(MD5.HashData(file));
    }

    public static string Megabytes(long bytes) => $"{bytes / 1e6:0.0} MB";
}

/// <summary>A download that could not complete: the server refused it, or the retries ran out; what was fetched is kept to continue from.</summary>
internal sealed class DownloadFailedException(string message) : Exception(message);
