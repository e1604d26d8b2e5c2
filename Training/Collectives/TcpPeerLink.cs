using System.Diagnostics.Metrics;
using System.Net.Sockets;

namespace Elastic.Training.Collectives;

/// <summary>A peer link over a connected TCP socket (Nagle off, large buffers).</summary>
public sealed class TcpPeerLink : IPeerLink
{
    private static readonly Counter<long> Bytes = new Meter("Elastic").CreateCounter<long>("elastic.dataplane.bytes", "By", "Bytes sent over data-plane TCP links");
    private readonly Socket _socket;

    public TcpPeerLink(Socket socket)
    {
        _socket = socket;
        Configure(socket);
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
            var length = data.Length;
            while (!data.IsEmpty)
            {
                var sent = await _socket.SendAsync(data, SocketFlags.None, cancellation).ConfigureAwait(false);
                data = data[sent..];
            }
            Bytes.Add(length);
        }
        catch (SocketException e)
        {
            throw new PeerLostException($"connection to {_socket.RemoteEndPoint} broke while sending: {e.SocketErrorCode}", e);
        }
    }

    public async ValueTask ReceiveAsync(Memory<byte> into, CancellationToken cancellation)
    {
        try
        {
            while (!into.IsEmpty)
            {
                var read = await _socket.ReceiveAsync(into, SocketFlags.None, cancellation).ConfigureAwait(false);
                if (read == 0) throw new PeerLostException($"{_socket.RemoteEndPoint} closed the connection");
                into = into[read..];
            }
        }
        catch (SocketException e)
        {
            throw new PeerLostException($"connection to {_socket.RemoteEndPoint} broke while receiving: {e.SocketErrorCode}", e);
        }
    }

    public void Dispose() => _socket.Dispose();
}
