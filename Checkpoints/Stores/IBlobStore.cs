namespace Elastic.Checkpoints.Stores;

/// <summary>
/// Where checkpoints live: a flat namespace of immutable blobs plus compare-and-swap for pointers. Chunks and
/// manifests are created once and never overwritten; only <c>latest</c> moves, and only by compare-and-swap.
/// </summary>
public interface IBlobStore
{
    /// <summary>A human-readable location, for messages.</summary>
    string Location { get; }

    /// <summary>Creates <paramref name="name"/>; throws <see cref="BlobAlreadyExistsException"/> if it exists (another writer won).</summary>
    Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default);

    /// <summary>Up to <paramref name="length"/> bytes from <paramref name="offset"/> (fewer if the blob is shorter); throws <see cref="BlobNotFoundException"/>.</summary>
    Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken cancellation = default);

    /// <summary>The whole blob and its version (an opaque tag for <see cref="TrySwapAsync"/>), or null when it does not exist.</summary>
    Task<VersionedBlob?> GetVersionedAsync(string name, CancellationToken cancellation = default);

    /// <summary>Replaces <paramref name="name"/> only if it still has <paramref name="expectedVersion"/> (null: only if it does not exist).</summary>
    Task<bool> TrySwapAsync(string name, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellation = default);

    IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellation = default);

    Task DeleteAsync(string name, CancellationToken cancellation = default);
}

public sealed record VersionedBlob(byte[] Content, string Version);

public sealed class BlobAlreadyExistsException(string name, string location) : IOException($"{name} already exists in {location}")
{
    public string Name { get; } = name;
}

public sealed class BlobNotFoundException(string name, string location) : IOException($"{name} does not exist in {location}")
{
    public string Name { get; } = name;
}
