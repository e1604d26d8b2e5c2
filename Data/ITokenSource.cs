namespace Elastic.Data;

/// <summary>
/// The ids of one source by position: a corpus held whole in memory, or a prepared dataset read block by block from a folder or
/// blob storage. Where ids come from never changes which ids a sample holds.
/// </summary>
public interface ITokenSource
{
    /// <summary>Ids in the source.</summary>
    long Length { get; }

    /// <summary>Copies ids [start, start + destination.Length) into <paramref name="destination"/>, waiting for any not here yet.</summary>
    void Read(long start, Span<int> destination);

    /// <summary>Asks for ids [start, start + count) to be fetched in the background, ahead of their <see cref="Read"/>.</summary>
    void Prefetch(long start, int count);

    /// <summary>How long reads have waited for ids that were not here yet, over every thread.</summary>
    TimeSpan Waited { get; }
}
