using static TorchSharp.torch;

namespace Elastic.Training.Collectives;

/// <summary>
/// A link that lends tensors between device threads of one process: no copy, no host round-trip, no serialization. The
/// receiver reads a lent tensor where it lies (its handle is the receiver's to dispose) and says when it is done; the
/// lender leaves the values unchanged until then.
/// </summary>
public interface ITensorLink
{
    /// <summary>Lends <paramref name="view"/> (a handle of its own, in no dispose scope) to the peer as message <paramref name="sequence"/>.</summary>
    void Lend(long sequence, Tensor view);

    /// <summary>Tells the peer, as message <paramref name="sequence"/>, that this end is done reading what it lent.</summary>
    void Done(long sequence);

    /// <summary>The peer's next message: a lent tensor, or null when the peer is done reading; <see cref="PeerLostException"/> if it went away.</summary>
    ValueTask<(long Sequence, Tensor? Lent)> ReceiveLentAsync(CancellationToken cancellation);
}
