namespace Elastic.Training.Collectives;

/// <summary>An ordered, reliable byte channel to one peer rank: a TCP socket across silos, memory within one.</summary>
public interface IPeerLink : IDisposable
{
    ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellation);

    /// <summary>Fills <paramref name="into"/> completely, or throws <see cref="PeerLostException"/> if the peer went away.</summary>
    ValueTask ReceiveAsync(Memory<byte> into, CancellationToken cancellation);
}

/// <summary>The peer closed its end or its connection broke.</summary>
public sealed class PeerLostException(string message, Exception? inner = null) : IOException(message, inner);
