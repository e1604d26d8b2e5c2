using System.Net;
using System.Net.Sockets;
using Elastic.Benchmarks.Chaos;

namespace Elastic.Tests.Chaos;

/// <summary>The chaos suite's fault proxy in front of a small HTTP server: forwarding, 503s, resets and stalls, switched while it runs.</summary>
public sealed class FaultProxyTests
{
    [Fact]
    public async Task The_proxy_forwards_answers_503_resets_and_stalls_as_it_is_told()
    {
        using var server = new TcpListener(IPAddress.Loopback, 0);
        server.Start();
        _ = Serve(server);
        await using var proxy = new FaultProxy(((IPEndPoint)server.LocalEndpoint).Port);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxy.Port}"), Timeout = TimeSpan.FromSeconds(2) };

        Assert.Equal("hello", await http.GetStringAsync("/"));

        proxy.Set(ProxyMode.Unavailable);
        using (var busy = await http.GetAsync("/"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
            Assert.Equal("ServerBusy", busy.Headers.GetValues("x-ms-error-code").Single());
        }

        proxy.Set(ProxyMode.Reset);
        // A reset that lands before the client has read the connection's endpoints surfaces as the socket's own error.
        var reset = await Record.ExceptionAsync(() => http.GetStringAsync("/"));
        Assert.True(reset is HttpRequestException or SocketException, $"{reset?.GetType().Name ?? "no exception"}: {reset?.Message}");

        proxy.Set(ProxyMode.Stall);
        await Assert.ThrowsAsync<TaskCanceledException>(() => http.GetStringAsync("/"));

        proxy.Set(ProxyMode.Latency, TimeSpan.FromMilliseconds(100));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("hello", await http.GetStringAsync("/"));
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(100), $"{watch.Elapsed.TotalMilliseconds} ms");

        proxy.Set(ProxyMode.Forward);
        Assert.Equal("hello", await http.GetStringAsync("/"));
    }

    /// <summary>Answers every request on every connection with "hello".</summary>
    private static async Task Serve(TcpListener server)
    {
        while (true)
        {
            TcpClient client;
            try
            {
                client = await server.AcceptTcpClientAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var stream = client.GetStream();
                    var buffer = new byte[4096];
                    try
                    {
                        while (await stream.ReadAsync(buffer) > 0)
                            await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"u8.ToArray());
                    }
                    catch (IOException)
                    {
                    }
                }
            });
        }
    }
}
