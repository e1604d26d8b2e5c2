using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A loopback TCP proxy that slows what clients send to a target port to a fixed rate (replies pass freely), or holds it
/// altogether once paused: one silo's checkpoint uploads made slow or stuck, so that a test can act while they are
/// certainly in flight.
/// </summary>
public sealed class ThrottledProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly int _targetPort;
    private readonly long _bytesPerSecond;
    private readonly Task _accepting;
    private volatile bool _paused;

    public ThrottledProxy(int targetPort, long bytesPerSecond)
    {
        (_targetPort, _bytesPerSecond) = (targetPort, bytesPerSecond);
        _listener.Start();
        _accepting = Accept();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>From now on nothing more the clients send reaches the target (until the proxy is disposed).</summary>
    public void Pause() => _paused = true;

    private async Task Accept()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = Relay(client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private async Task Relay(TcpClient client)
    {
        using (client)
        using (var target = new TcpClient())
        {
            try
            {
                await target.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
                await Task.WhenAny(Copy(client.GetStream(), target.GetStream(), _bytesPerSecond), Copy(target.GetStream(), client.GetStream(), null));
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
            }
        }
    }

    private async Task Copy(Stream from, Stream to, long? bytesPerSecond)
    {
        var buffer = new byte[16 * 1024];
        var clock = Stopwatch.StartNew();
        long sent = 0;
        int read;
        while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
        {
            while (bytesPerSecond is not null && _paused) await Task.Delay(10, _stop.Token);
            await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            sent += read;
            if (bytesPerSecond is { } rate && TimeSpan.FromSeconds((double)sent / rate) - clock.Elapsed is { Ticks: > 0 } ahead)
                await Task.Delay(ahead, _stop.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
