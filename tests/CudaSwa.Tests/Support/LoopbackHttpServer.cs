using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CudaSwa.Tests.Support;

/// <summary>
/// A minimal HTTP/1.1 file server on 127.0.0.1 for download tests: serves one body at any path,
/// honours "Range: bytes=N-" with 206, and can misbehave on purpose — cut the connection after
/// some bytes, or answer with an error status — for the first requests. Records every request's
/// Range header.
/// </summary>
public sealed class LoopbackHttpServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string?> _ranges = [];

    public LoopbackHttpServer(byte[] body)
    {
        Body = body;
        _listener.Start();
        _ = Task.Run(AcceptLoop);
    }

    public byte[] Body { get; set; }
    /// <summary>For the first this-many requests, close the connection after <see cref="CutAfter"/> body bytes.</summary>
    public int CutRequests { get; set; }
    public int CutAfter { get; set; }
    /// <summary>For the first this-many requests (after the cut ones), answer <see cref="FailStatus"/>.</summary>
    public int FailRequests { get; set; }
    public int FailStatus { get; set; } = 503;

    public Uri Url(string file) => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/{file}");

    /// <summary>The Range header of each request so far (null: none), in order.</summary>
    public IReadOnlyList<string?> Ranges { get { lock (_ranges) return [.. _ranges]; } }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            var stream = client.GetStream();
            var reader = new StreamReader(stream, Encoding.ASCII);
            string? line = await reader.ReadLineAsync();
            if (line is null) return;
            string? range = null;
            while (!string.IsNullOrEmpty(line = await reader.ReadLineAsync()))
                if (line.StartsWith("Range:", StringComparison.OrdinalIgnoreCase)) range = line[6..].Trim();
            int index;
            lock (_ranges) { _ranges.Add(range); index = _ranges.Count; }
            var body = Body;
            if (index > CutRequests && index <= CutRequests + FailRequests)
            {
                await Write(stream, $"HTTP/1.1 {FailStatus} Failing On Purpose\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            long start = 0;
            if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
                start = long.Parse(range[6..^1]);
            string head = start > 0
                ? $"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{body.Length - 1}/{body.Length}\r\nContent-Length: {body.Length - start}\r\nConnection: close\r\n\r\n"
                : $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n";
            await Write(stream, head);
            int length = (int)(body.Length - start);
            if (index <= CutRequests) length = Math.Min(length, CutAfter);
            await stream.WriteAsync(body.AsMemory((int)start, length));
            await stream.FlushAsync();
            if (index <= CutRequests) client.Client.LingerState = new LingerOption(true, 0); // an abrupt close, as a broken network gives
        }
    }

    private static Task Write(NetworkStream stream, string text) => stream.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask();

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
