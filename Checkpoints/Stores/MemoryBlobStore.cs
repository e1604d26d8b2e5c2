using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Elastic.Checkpoints.Stores;

/// <summary>
/// Blobs in process memory. State handed between replicas travels as an in-memory checkpoint (chunk file plus
/// manifest) so that receivers load it with the same verified, resharding reader as a stored checkpoint.
/// </summary>
public sealed class MemoryBlobStore : IBlobStore
{
    private readonly ConcurrentDictionary<string, (byte[] Content, long Version)> _blobs = new(StringComparer.Ordinal);
    private long _versions;

    public string Location => "memory";

    /// <summary>The content of <paramref name="name"/>; throws <see cref="BlobNotFoundException"/>.</summary>
    public byte[] Get(string name) => _blobs.TryGetValue(name, out var blob) ? blob.Content : throw new BlobNotFoundException(name, Location);

    public Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default) =>
        _blobs.TryAdd(name, (content.ToArray(), Interlocked.Increment(ref _versions)))
            ? Task.CompletedTask
            : Task.FromException(new BlobAlreadyExistsException(name, Location));

    public Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken cancellation = default)
    {
        var content = Get(name);
        var start = (int)Math.Min(offset, content.Length);
        return Task.FromResult(content.AsSpan(start, (int)Math.Min(length, content.Length - start)).ToArray());
    }

    public Task<VersionedBlob?> GetVersionedAsync(string name, CancellationToken cancellation = default) =>
        Task.FromResult(_blobs.TryGetValue(name, out var blob) ? new VersionedBlob(blob.Content, $"{blob.Version}") : null);

    public Task<bool> TrySwapAsync(string name, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellation = default)
    {
        var replacement = (content.ToArray(), Interlocked.Increment(ref _versions));
        if (expectedVersion is null) return Task.FromResult(_blobs.TryAdd(name, replacement));
        return Task.FromResult(_blobs.TryGetValue(name, out var current) && $"{current.Version}" == expectedVersion
                               && _blobs.TryUpdate(name, replacement, current));
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        foreach (var name in _blobs.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            yield return name;
        await Task.CompletedTask;
    }

    public Task DeleteAsync(string name, CancellationToken cancellation = default)
    {
        _blobs.TryRemove(name, out _);
        return Task.CompletedTask;
    }
}
