using System.Diagnostics.Metrics;
using System.Net.Sockets;

namespace Elastic.Training.Collectives;

/// <summary>A peer link over a connected TCP socket (Nagle off, large buffers), in the clear or inside TLS.</summary>
public sealed class TcpPeerLink : IPeerLink
{
    private static readonly Counter<long> Bytes = new Meter("Elastic").CreateCounter<long>("elastic.dataplane.bytes", "By", "Bytes sent over data-plane TCP links");
    private readonly Stream _stream;
    private readonly string _remote;

    private TcpPeerLink(Stream stream, string remote) => (_stream, _remote) = (stream, remote);

    /// <summary>
    /// A link over <paramref name="socket"/> (which it then owns): with <paramref name="tls"/>, after the TLS handshake as the
    /// <paramref name="dialling"/> or the listening end.
    /// </summary>
    public static async Task<TcpPeerLink> OpenAsync(Socket socket, DataPlaneTls? tls, bool dialling, CancellationToken cancellation)
    {
        Configure(socket);
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        if (tls is not null) stream = dialling ? await tls.DialAsync(stream, cancellation) : await tls.AcceptAsync(stream, cancellation);
        return new TcpPeerLink(stream, remote);
    }

    public static void Configure(Socket socket)
    {
        socket.NoDelay = true;
        socket.SendBufferSize = 4 << 20;
        socket.ReceiveBufferSize = 4 << 20;
    }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellation)
    {
        try
        {
            await _stream.WriteAsync(data, cancellation).ConfigureAwait(false);
            Bytes.Add(data.Length);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            throw new PeerLostException($"connection to {_remote} broke while sending: {Reason(e)}", e);
        }
    }

    public async ValueTask ReceiveAsync(Memory<byte> into, CancellationToken cancellation)
    {
        try
        {
            while (!into.IsEmpty)
            {
                var read = await _stream.ReadAsync(into, cancellation).ConfigureAwait(false);
                if (read == 0) throw new PeerLostException($"{_remote} closed the connection");
                into = into[read..];
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            throw new PeerLostException($"connection to {_remote} broke while receiving: {Reason(e)}", e);
        }
    }

    private static string Reason(Exception e) => (e as SocketException ?? e.InnerException as SocketException)?.SocketErrorCode.ToString() ?? e.Message;

    public void Dispose() => _stream.Dispose();
}
