using System.Threading.Channels;

namespace Elastic.Training.Collectives;

/// <summary>A peer link between two ranks of the same process: each send is copied into the other end's queue.</summary>
public sealed class InMemoryPeerLink : IPeerLink
{
    private readonly Channel<byte[]> _inbox;
    private readonly Channel<byte[]> _outbox;
    private byte[] _pending = [];
    private int _pendingOffset;

    private InMemoryPeerLink(Channel<byte[]> inbox, Channel<byte[]> outbox)
    {
        _inbox = inbox;
        _outbox = outbox;
    }

    public static (InMemoryPeerLink A, InMemoryPeerLink B) CreatePair()
    {
        var (ab, ba) = (Channel.CreateUnbounded<byte[]>(), Channel.CreateUnbounded<byte[]>());
        return (new InMemoryPeerLink(ba, ab), new InMemoryPeerLink(ab, ba));
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellation)
    {
        if (!_outbox.Writer.TryWrite(data.ToArray())) throw new PeerLostException("the in-process peer closed its link");
        return ValueTask.CompletedTask;
    }

    public async ValueTask ReceiveAsync(Memory<byte> into, CancellationToken cancellation)
    {
        while (!into.IsEmpty)
        {
            if (_pendingOffset == _pending.Length)
            {
                try
                {
                    _pending = await _inbox.Reader.ReadAsync(cancellation).ConfigureAwait(false);
                }
                catch (ChannelClosedException e)
                {
                    throw new PeerLostException("the in-process peer closed its link", e);
                }
                _pendingOffset = 0;
            }
            var take = Math.Min(into.Length, _pending.Length - _pendingOffset);
            _pending.AsMemory(_pendingOffset, take).CopyTo(into);
            _pendingOffset += take;
            into = into[take..];
        }
    }

    public void Dispose()
    {
        _outbox.Writer.TryComplete();
        _inbox.Writer.TryComplete();
    }
}
