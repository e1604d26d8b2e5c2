using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Elastic.Benchmarks.Chaos;

/// <summary>What a <see cref="FaultProxy"/> does to the traffic through it.</summary>
public enum ProxyMode
{
    /// <summary>Bytes pass as they come.</summary>
    Forward,
    /// <summary>Each chunk waits <see cref="FaultProxy.Latency"/> before it goes on.</summary>
    Latency,
    /// <summary>Connections stay open and nothing moves: a hung peer or a black-holed route.</summary>
    Stall,
    /// <summary>Every connection is reset, open ones at once and new ones when they arrive.</summary>
    Reset,
    /// <summary>Open connections are reset; each new one gets <c>503 Server Busy</c> for its first HTTP request, as Azure Storage answers when throttling.</summary>
    Unavailable,
}

/// <summary>
/// A loopback TCP proxy in front of one port (a silo's storage, or its data-plane listener) whose behaviour a chaos run
/// switches while traffic flows: latency, stalls, resets, storage 503s.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<TcpClient, byte> _open = new();
    private readonly int _targetPort;
    private readonly Task _accepting;
    private volatile ProxyMode _mode;

    public FaultProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        _accepting = Accept();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public ProxyMode Mode => _mode;

    public TimeSpan Latency { get; private set; } = TimeSpan.FromMilliseconds(100);

    public void Set(ProxyMode mode, TimeSpan? latency = null)
    {
        Latency = latency ?? Latency;
        _mode = mode;
        if (mode is ProxyMode.Reset or ProxyMode.Unavailable)
            foreach (var client in _open.Keys) Abort(client);
    }

    private async Task Accept()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = Serve(client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                switch (_mode)
                {
                    case ProxyMode.Reset:
                        Abort(client);
                        return;
                    case ProxyMode.Unavailable:
                        await Busy(client);
                        return;
                }
                using var target = new TcpClient();
                await target.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
                _open[client] = 0;
                _open[target] = 0;
                try
                {
                    await Task.WhenAny(Copy(client.GetStream(), target.GetStream()), Copy(target.GetStream(), client.GetStream()));
                }
                finally
                {
                    _open.TryRemove(client, out _);
                    _open.TryRemove(target, out _);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>Reads one request head and answers it 503, closing the connection.</summary>
    private async Task Busy(TcpClient client)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var stream = client.GetStream();
        var head = new List<byte>();
        var buffer = new byte[4096];
        while (head.Count < 65_536 && !EndsHead(head))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            if (read == 0) return;
            head.AddRange(buffer.AsSpan(0, read));
        }
        var response = Encoding.ASCII.GetBytes(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nx-ms-error-code: ServerBusy\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(response, timeout.Token);
    }

    private static bool EndsHead(List<byte> bytes) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes).IndexOf("\r\n\r\n"u8) >= 0;

    private async Task Copy(Stream from, Stream to)
    {
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
        {
            while (_mode == ProxyMode.Stall) await Task.Delay(20, _stop.Token);
            if (_mode == ProxyMode.Latency) await Task.Delay(Latency, _stop.Token);
            await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
        }
    }

    /// <summary>Closes with a reset (linger 0), as a dropped route or a killed peer looks to the other end.</summary>
    private static void Abort(TcpClient client)
    {
        // A connection that closed meanwhile has no socket left.
        if (client.Client is not { } socket) return;
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        foreach (var client in _open.Keys) Abort(client);
        await _accepting;
        _stop.Dispose();
    }
}
