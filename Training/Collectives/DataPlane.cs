using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Elastic.Training.Collectives;

/// <summary>
/// One per host process (per silo): a TCP listener that peers dial, and the rendezvous that turns a group's
/// ranks into a <see cref="Communicator"/>. Ranks on the same data plane link in memory; ranks on different
/// ones by TCP, the higher rank dialling the lower. Group names carry the job generation, so links of a
/// stale plan can never be mistaken for current ones.
/// </summary>
public sealed class DataPlane : IAsyncDisposable
{
    private const uint Magic = 0x50444C45; // "ELDP"
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<(string Group, int To, int From), TaskCompletionSource<IPeerLink>> _slots = new();
    private readonly Task _acceptLoop;

    /// <param name="bind">Address to listen on.</param>
    /// <param name="port">Port to listen on; 0 picks a free one.</param>
    /// <param name="advertisedHost">Host name or address peers dial (defaults to the bind address).</param>
    public DataPlane(IPAddress bind, int port = 0, string? advertisedHost = null)
    {
        _listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        // A restarted silo must be able to take its port back while old connections linger in TIME_WAIT.
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(new IPEndPoint(bind, port));
        _listener.Listen(256);
        var bound = (IPEndPoint)_listener.LocalEndPoint!;
        Endpoint = $"{advertisedHost ?? bind.ToString()}:{bound.Port}";
        _acceptLoop = AcceptLoop();
    }

    /// <summary>"host:port" that peers dial; also this data plane's identity in a group's endpoint list.</summary>
    public string Endpoint { get; }

    /// <summary>
    /// Links rank <paramref name="rank"/> of <paramref name="group"/> to every other rank. Every rank of the group
    /// must call this with the same endpoint list (index = rank) within <paramref name="joinTimeout"/> (default:
    /// <paramref name="timeout"/>, which bounds each collective of the group).
    /// </summary>
    public async Task<Communicator> JoinAsync(string group, int rank, IReadOnlyList<string> endpoints, TimeSpan timeout, TimeSpan? joinTimeout = null)
    {
        var links = new IPeerLink?[endpoints.Count];
        try
        {
            using var deadline = new CancellationTokenSource(joinTimeout ?? timeout);
            for (var peer = 0; peer < rank; peer++)
                links[peer] = endpoints[peer] == Endpoint ? LinkInMemory(group, rank, peer) : await Dial(group, rank, peer, endpoints[peer], deadline.Token);
            for (var peer = rank + 1; peer < endpoints.Count; peer++)
            {
                var slot = Slot(group, rank, peer);
                try
                {
                    links[peer] = await slot.Task.WaitAsync(deadline.Token);
                }
                catch (OperationCanceledException)
                {
                    throw new CollectiveException($"{group}: rank {peer} ({endpoints[peer]}) did not connect to rank {rank} within {(joinTimeout ?? timeout).TotalSeconds:0.#} s");
                }
                finally
                {
                    _slots.TryRemove((group, rank, peer), out _);
                }
            }
            return new Communicator(group, rank, links, timeout);
        }
        catch
        {
            foreach (var link in links) link?.Dispose();
            throw;
        }
    }

    private IPeerLink LinkInMemory(string group, int rank, int peer)
    {
        var (mine, theirs) = InMemoryPeerLink.CreatePair();
        if (!Slot(group, peer, rank).TrySetResult(theirs)) throw new CollectiveException($"{group}: rank {rank} joined twice");
        return mine;
    }

    /// <summary>Connects to a peer's data plane (retrying while it refuses: it may still be starting) and says who is calling.</summary>
    private async Task<IPeerLink> Dial(string group, int rank, int peer, string endpoint, CancellationToken cancellation)
    {
        var (host, port) = ParseEndpoint(endpoint);
        while (true)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                TcpPeerLink.Configure(socket);
                await socket.ConnectAsync(host, port, cancellation);
                var name = Encoding.UTF8.GetBytes(group);
                var hello = new byte[16 + name.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), peer);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), name.Length);
                name.CopyTo(hello, 16);
                await socket.SendAsync(hello, SocketFlags.None, cancellation);
                return new TcpPeerLink(socket);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                socket.Dispose();
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                throw new CollectiveException($"{group}: rank {rank} could not reach rank {peer} at {endpoint}: {e.Message}", e);
            }
            try
            {
                await Task.Delay(50, cancellation).ConfigureAwait(false);
            }
            catch (OperationCanceledException e)
            {
                throw new CollectiveException($"{group}: rank {rank} could not reach rank {peer} at {endpoint}: connection refused until the timeout", e);
            }
        }
    }

    private async Task AcceptLoop()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested) return;
                continue;
            }
            _ = Greet(socket);
        }
    }

    /// <summary>Reads a dialler's hello and hands the connection to the rank waiting for it; anything malformed is dropped.</summary>
    private async Task Greet(Socket socket)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            var link = new TcpPeerLink(socket);
            var header = new byte[16];
            await link.ReceiveAsync(header, timeout.Token);
            var nameLength = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || nameLength is < 0 or > 4096)
            {
                link.Dispose();
                return;
            }
            var name = new byte[nameLength];
            await link.ReceiveAsync(name, timeout.Token);
            var (from, to) = (BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4)), BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8)));
            if (!Slot(Encoding.UTF8.GetString(name), to, from).TrySetResult(link)) link.Dispose();
        }
        catch (Exception e) when (e is PeerLostException or OperationCanceledException or SocketException)
        {
            socket.Dispose();
        }
    }

    private TaskCompletionSource<IPeerLink> Slot(string group, int to, int from) =>
        _slots.GetOrAdd((group, to, from), _ => new TaskCompletionSource<IPeerLink>(TaskCreationOptions.RunContinuationsAsynchronously));

    private static (string Host, int Port) ParseEndpoint(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), out var port))
            throw new ArgumentException($"data-plane endpoint '{endpoint}' is not host:port", nameof(endpoint));
        return (endpoint[..colon].Trim('[', ']'), port);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Dispose();
        await _acceptLoop;
        foreach (var slot in _slots.Values)
            if (slot.Task.IsCompletedSuccessfully) slot.Task.Result.Dispose();
        _stopping.Dispose();
    }
}
