using System.Threading.Channels;
using static TorchSharp.torch;

namespace Elastic.Training.Collectives;

/// <summary>
/// A peer link between two ranks of the same process: each byte send is copied into the other end's queue, and tensors
/// are lent where they lie (<see cref="ITensorLink"/>).
/// </summary>
public sealed class InMemoryPeerLink : IPeerLink, ITensorLink
{
    private readonly Channel<byte[]> _inbox;
    private readonly Channel<byte[]> _outbox;
    private readonly Channel<(long, Tensor?)> _tensorInbox;
    private readonly Channel<(long, Tensor?)> _tensorOutbox;
    private byte[] _pending = [];
    private int _pendingOffset;

    private InMemoryPeerLink(Channel<byte[]> inbox, Channel<byte[]> outbox, Channel<(long, Tensor?)> tensorInbox, Channel<(long, Tensor?)> tensorOutbox)
    {
        (_inbox, _outbox) = (inbox, outbox);
        (_tensorInbox, _tensorOutbox) = (tensorInbox, tensorOutbox);
    }

    public static (InMemoryPeerLink A, InMemoryPeerLink B) CreatePair()
    {
        var (ab, ba) = (Channel.CreateUnbounded<byte[]>(), Channel.CreateUnbounded<byte[]>());
        var (tensorsAb, tensorsBa) = (Channel.CreateUnbounded<(long, Tensor?)>(), Channel.CreateUnbounded<(long, Tensor?)>());
        return (new InMemoryPeerLink(ba, ab, tensorsBa, tensorsAb), new InMemoryPeerLink(ab, ba, tensorsAb, tensorsBa));
    }

    public void Lend(long sequence, Tensor view)
    {
        if (_tensorOutbox.Writer.TryWrite((sequence, view))) return;
        view.Dispose();
        throw new PeerLostException("the in-process peer closed its link");
    }

    public void Done(long sequence)
    {
        if (!_tensorOutbox.Writer.TryWrite((sequence, null))) throw new PeerLostException("the in-process peer closed its link");
    }

    public async ValueTask<(long Sequence, Tensor? Lent)> ReceiveLentAsync(CancellationToken cancellation)
    {
        try
        {
            return await _tensorInbox.Reader.ReadAsync(cancellation).ConfigureAwait(false);
        }
        catch (ChannelClosedException e)
        {
            throw new PeerLostException("the in-process peer closed its link", e);
        }
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
        _tensorOutbox.Writer.TryComplete();
        _tensorInbox.Writer.TryComplete();
        // Handles lent and never taken are this end's to free (the values stay the lender's).
        while (_tensorInbox.Reader.TryRead(out var left)) left.Item2?.Dispose();
    }
}
