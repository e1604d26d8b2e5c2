using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;

namespace Elastic.Training.Collectives;

/// <summary>
/// One per host process (per silo): a TCP listener that peers dial, and the rendezvous that turns a group's
/// ranks into a <see cref="Communicator"/>. Ranks on the same data plane link in memory; ranks on different
/// ones by TCP, the higher rank dialling the lower. Group names carry the job generation, so links of a
/// stale plan can never be mistaken for current ones. A TCP link is made only between two data planes that prove they
/// hold the group's <see cref="GroupSecret"/> (see there); any other connection is refused, and reported.
/// </summary>
public sealed class DataPlane : IAsyncDisposable
{
    private const uint Magic = 0x50444C45; // "ELDP"
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(30);
    private const int RememberedGroups = 1024;
    private readonly ConcurrentDictionary<(string Group, int To, int From), Rendezvous> _slots = new();
    private readonly ConcurrentDictionary<(string Group, int Rank), GroupSecret> _joined = new();
    private readonly ConcurrentQueue<(string Group, int Rank)> _joinOrder = new();
    private readonly Task _acceptLoop;
    private readonly Action<string>? _refused;
    private readonly DataPlaneTls? _tls;
    private int _refusals;

    /// <param name="bind">Address to listen on.</param>
    /// <param name="port">Port to listen on; 0 picks a free one.</param>
    /// <param name="advertisedHost">Host name or address peers dial (defaults to the bind address).</param>
    /// <param name="refused">Told of every connection refused for a missing or wrong proof, or a failed TLS handshake (what it claimed and from where; never a secret).</param>
    /// <param name="tls">Links inside mutual TLS (every data plane of a cluster alike); null: in the clear, still authenticated by the group's secret.</param>
    /// <param name="advertisedPort">Port peers dial when it is not the one listened on (a NAT, a proxy); null: the bound port.</param>
    public DataPlane(IPAddress bind, int port = 0, string? advertisedHost = null, Action<string>? refused = null, DataPlaneTls? tls = null, int? advertisedPort = null)
    {
        _refused = refused;
        _tls = tls;
        _listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        // A restarted silo must be able to take its port back while old connections linger in TIME_WAIT.
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(new IPEndPoint(bind, port));
        _listener.Listen(256);
        var bound = (IPEndPoint)_listener.LocalEndPoint!;
        Endpoint = $"{advertisedHost ?? bind.ToString()}:{advertisedPort ?? bound.Port}";
        _acceptLoop = AcceptLoop();
    }

    /// <summary>"host:port" that peers dial; also this data plane's identity in a group's endpoint list.</summary>
    public string Endpoint { get; }

    /// <summary>Connections refused so far because they did not prove they hold their group's secret.</summary>
    public int Refusals => Volatile.Read(ref _refusals);

    /// <summary>
    /// Links rank <paramref name="rank"/> of <paramref name="group"/> to every other rank. Every rank of the group
    /// must call this with the same endpoint list (index = rank) and <paramref name="secret"/> within <paramref name="joinTimeout"/>
    /// (default: <paramref name="timeout"/>, which bounds each collective of the group).
    /// </summary>
    public async Task<Communicator> JoinAsync(string group, int rank, IReadOnlyList<string> endpoints, GroupSecret secret, TimeSpan timeout, TimeSpan? joinTimeout = null)
    {
        var links = new IPeerLink?[endpoints.Count];
        // Every higher rank may dial at once: each finds its rendezvous ready, with the secret to check it against.
        for (var peer = rank + 1; peer < endpoints.Count; peer++) Slot(group, rank, peer).Secret.TrySetResult(secret);
        Remember(group, rank, secret);
        try
        {
            using var deadline = new CancellationTokenSource(joinTimeout ?? timeout);
            for (var peer = 0; peer < rank; peer++)
                links[peer] = endpoints[peer] == Endpoint ? LinkInMemory(group, rank, peer) : await Dial(group, rank, peer, endpoints[peer], secret, deadline.Token);
            for (var peer = rank + 1; peer < endpoints.Count; peer++)
            {
                var slot = Slot(group, rank, peer);
                try
                {
                    links[peer] = await slot.Link.Task.WaitAsync(deadline.Token);
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
            // The peers never waited for: their rendezvous go too (a link that arrives late is closed with it).
            for (var peer = rank + 1; peer < endpoints.Count; peer++)
                if (_slots.TryRemove((group, rank, peer), out var left) && !left.Link.TrySetCanceled() && left.Link.Task.IsCompletedSuccessfully)
                    left.Link.Task.Result.Dispose();
            throw;
        }
    }

    private IPeerLink LinkInMemory(string group, int rank, int peer)
    {
        var (mine, theirs) = InMemoryPeerLink.CreatePair();
        if (!Slot(group, peer, rank).Link.TrySetResult(theirs)) throw new CollectiveException($"{group}: rank {rank} joined twice");
        return mine;
    }

    /// <summary>
    /// Connects to a peer's data plane (retrying while it refuses: it may still be starting), says who is calling, and
    /// proves it holds the group's secret as the peer proves it too: hello (ranks, group, our nonce) -> their nonce and
    /// proof -> our proof -> their acceptance.
    /// </summary>
    private async Task<IPeerLink> Dial(string group, int rank, int peer, string endpoint, GroupSecret secret, CancellationToken cancellation)
    {
        var (host, port) = ParseEndpoint(endpoint);
        while (true)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                TcpPeerLink.Configure(socket);
                await socket.ConnectAsync(host, port, cancellation);
                TcpPeerLink link;
                try
                {
                    link = await TcpPeerLink.OpenAsync(socket, _tls, dialling: true, cancellation);
                }
                catch (Exception e) when (e is AuthenticationException or IOException)
                {
                    throw new CollectiveException($"{group}: rank {rank} could not open a TLS link to rank {peer} at {endpoint}: {e.Message}", e);
                }
                var name = Encoding.UTF8.GetBytes(group);
                var ours = GroupSecret.NewNonce();
                var hello = new byte[16 + name.Length + ours.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), peer);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), name.Length);
                name.CopyTo(hello, 16);
                ours.CopyTo(hello, 16 + name.Length);
                await link.SendAsync(hello, cancellation);
                var answer = new byte[GroupSecret.NonceBytes + GroupSecret.ProofBytes];
                await Receive(link, answer, group, rank, peer, endpoint, "did not answer our hello", cancellation);
                var theirs = answer.AsSpan(0, GroupSecret.NonceBytes).ToArray();
                if (!secret.Verify(answer.AsSpan(GroupSecret.NonceBytes), "listener", group, rank, peer, ours, theirs))
                {
                    link.Dispose();
                    throw new CollectiveException($"{group}: rank {peer} at {endpoint} did not prove it holds the group's secret; not linked");
                }
                await link.SendAsync(secret.Prove("dialler", group, rank, peer, ours, theirs), cancellation);
                await Receive(link, new byte[1], group, rank, peer, endpoint, "refused our proof", cancellation);
                return link;
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

    private static async Task Receive(TcpPeerLink link, byte[] buffer, string group, int rank, int peer, string endpoint, string failure, CancellationToken cancellation)
    {
        try
        {
            await link.ReceiveAsync(buffer, cancellation);
        }
        catch (PeerLostException e)
        {
            link.Dispose();
            throw new CollectiveException($"{group}: rank {peer} at {endpoint} {failure} (rank {rank} dialling)", e);
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

    /// <summary>
    /// Reads a dialler's hello, waits until the rank it names has joined (so that its secret is known), proves this side
    /// holds the secret, checks the dialler's proof, and only then hands the connection to that rank. A malformed hello is
    /// dropped; a missing or wrong proof is refused and reported.
    /// </summary>
    private async Task Greet(Socket socket)
    {
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(HelloTimeout);
        TcpPeerLink link;
        try
        {
            link = await TcpPeerLink.OpenAsync(socket, _tls, dialling: false, timeout.Token);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            socket.Dispose();
            Refuse($"refused a data-plane connection from {remote}: the TLS handshake failed ({e.Message})");
            return;
        }
        try
        {
            var header = new byte[16];
            await link.ReceiveAsync(header, timeout.Token);
            var nameLength = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || nameLength is < 0 or > 4096)
            {
                link.Dispose();
                return;
            }
            var rest = new byte[nameLength + GroupSecret.NonceBytes];
            await link.ReceiveAsync(rest, timeout.Token);
            var group = Encoding.UTF8.GetString(rest, 0, nameLength);
            var dialNonce = rest.AsSpan(nameLength).ToArray();
            var (from, to) = (BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4)), BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8)));
            // A rank that joined here and no longer waits for this peer means an impostor or a stale dial: it is challenged at
            // once. Otherwise the rank it names may not have joined yet: wait for it to bring the secret.
            Rendezvous? slot = null;
            if (!_joined.TryGetValue((group, to), out var secret) || _slots.TryGetValue((group, to, from), out slot))
            {
                slot ??= Slot(group, to, from);
                secret = await slot.Secret.Task.WaitAsync(timeout.Token);
            }
            var ours = GroupSecret.NewNonce();
            await link.SendAsync(ours.Concat(secret.Prove("listener", group, from, to, dialNonce, ours)).ToArray(), timeout.Token);
            var proof = new byte[GroupSecret.ProofBytes];
            await link.ReceiveAsync(proof, timeout.Token);
            if (!secret.Verify(proof, "dialler", group, from, to, dialNonce, ours))
            {
                Refuse($"refused a data-plane connection from {remote} claiming rank {from} of {group}: its proof does not match the group's secret");
                link.Dispose();
                return;
            }
            await link.SendAsync(new byte[] { 1 }, timeout.Token);
            if (slot is null || !slot.Link.TrySetResult(link)) link.Dispose();
        }
        catch (Exception e) when (e is PeerLostException or OperationCanceledException or SocketException)
        {
            link.Dispose();
        }
    }

    /// <summary>Keeps the secrets of the latest ranks that joined here, so that a later dial to one of them is checked without waiting.</summary>
    private void Remember(string group, int rank, GroupSecret secret)
    {
        if (!_joined.TryAdd((group, rank), secret)) return;
        _joinOrder.Enqueue((group, rank));
        while (_joinOrder.Count > RememberedGroups && _joinOrder.TryDequeue(out var oldest)) _joined.TryRemove(oldest, out _);
    }

    private void Refuse(string message)
    {
        Interlocked.Increment(ref _refusals);
        _refused?.Invoke(message);
    }

    /// <summary>Where a rank waiting for a peer and that peer's connection meet: the rank brings the secret, the peer the link.</summary>
    private sealed class Rendezvous
    {
        public TaskCompletionSource<GroupSecret> Secret { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource<IPeerLink> Link { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private Rendezvous Slot(string group, int to, int from) => _slots.GetOrAdd((group, to, from), _ => new Rendezvous());

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
            if (slot.Link.Task.IsCompletedSuccessfully) slot.Link.Task.Result.Dispose();
        _stopping.Dispose();
    }
}
