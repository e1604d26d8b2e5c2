using System.Diagnostics;
using System.Security.Cryptography;
using Elastic.Checkpoints.Stores;

namespace Elastic.Data.Datasets;

/// <summary>
/// A prepared dataset's ids, read a block at a time with range reads as a job's samples ask for them (and ahead of them, on
/// <see cref="Prefetch"/>), each block checked against its SHA-256 in the manifest before any of it is used, through a bounded
/// <see cref="BlockCache"/>. Opening one reads the manifest only, so a job over billions of tokens starts at once. A damaged,
/// missing or unreadable block fails the read that needs it, naming the shard and block: never trained on.
/// </summary>
public sealed class DatasetTokens : ITokenSource
{
    private readonly StoreLocation _location;
    private readonly int _vocab;
    private readonly BlockCache _cache;
    // The dataset position of each shard's first id.
    private readonly long[] _shardStarts;
    private long _waitedTicks;

    private DatasetTokens(StoreLocation location, DatasetManifest manifest, int vocab, BlockCache cache)
    {
        (_location, Manifest, _vocab, _cache) = (location, manifest, vocab, cache);
        _shardStarts = new long[manifest.Shards.Count];
        for (var i = 1; i < _shardStarts.Length; i++) _shardStarts[i] = _shardStarts[i - 1] + manifest.Shards[i - 1].Tokens;
    }

    public DatasetManifest Manifest { get; }

    public long Length => Manifest.Tokens;

    public TimeSpan Waited => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _waitedTicks));

    /// <summary>Whether a data.source names a dataset (a blob prefix, or a folder) rather than a file.</summary>
    public static bool IsDataset(string source) => StoreLocation.IsBlob(source) || Directory.Exists(source);

    public static async Task<DatasetManifest> ManifestAsync(StoreLocation location, CancellationToken cancellation = default)
    {
        var content = await location.ReadAsync(DatasetManifest.FileName, cancellation)
            ?? throw new FileNotFoundException($"{location.Display}: no {DatasetManifest.FileName} (`elastic data prepare` writes one last)");
        return DatasetManifest.Parse(System.Text.Encoding.UTF8.GetString(content), $"{location.Display}/{DatasetManifest.FileName}");
    }

    /// <summary>
    /// The dataset at <paramref name="location"/>: its manifest read, and every shard it lists found in one listing (a missing one
    /// named now, not hours into the job). Ids not below <paramref name="vocab"/> fail the read that meets them.
    /// </summary>
    public static async Task<DatasetTokens> OpenAsync(StoreLocation location, int vocab, BlockCache? cache = null, CancellationToken cancellation = default)
    {
        var manifest = await ManifestAsync(location, cancellation);
        var present = await location.Reach(async () =>
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            await foreach (var name in location.Store.ListAsync(location.Prefix, cancellation)) names.Add(name);
            return names;
        });
        if (manifest.Shards.FirstOrDefault(s => !present.Contains(location.NameOf(s.Name))) is { } missing)
            throw new InvalidDataException($"{location.Display}: shard {missing.Name} is missing");
        return new DatasetTokens(location, manifest, vocab, cache ?? BlockCache.Shared);
    }

    public void Read(long start, Span<int> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        if (start + destination.Length > Length) throw new ArgumentOutOfRangeException(nameof(destination), $"ids [{start}, {start + destination.Length}) run past the dataset's {Length}");
        var at = 0;
        while (at < destination.Length)
        {
            var (shard, block, offset) = Locate(start + at);
            var fetch = Block(shard, block);
            if (!fetch.IsCompleted)
            {
                var waiting = Stopwatch.GetTimestamp();
                ((IAsyncResult)fetch).AsyncWaitHandle.WaitOne();
                Interlocked.Add(ref _waitedTicks, Stopwatch.GetTimestamp() - waiting);
            }
            var ids = fetch.GetAwaiter().GetResult();
            var count = Math.Min(ids.Length - offset, destination.Length - at);
            ids.AsSpan(offset, count).CopyTo(destination[at..]);
            at += count;
        }
    }

    public void Prefetch(long start, int count)
    {
        var end = Math.Min(start + count, Length);
        for (var position = Math.Max(0, start); position < end;)
        {
            var (shard, block, offset) = Locate(position);
            // A failure is the reader's to report: the cache forgets it and the read fetches again.
            _ = Block(shard, block);
            position += Manifest.BlockTokensOf(Manifest.Shards[shard]) - offset;
        }
    }

    /// <summary>The shard, block and offset in the block of dataset position <paramref name="position"/>.</summary>
    private (int Shard, int Block, int Offset) Locate(long position)
    {
        var shard = Array.BinarySearch(_shardStarts, position);
        if (shard < 0) shard = ~shard - 1;
        var inShard = position - _shardStarts[shard];
        var per = Manifest.BlockTokensOf(Manifest.Shards[shard]);
        return (shard, (int)(inShard / per), (int)(inShard % per));
    }

    private Task<int[]> Block(int shard, int block)
    {
        var s = Manifest.Shards[shard];
        return _cache.Get($"{s.Sha256}/{Manifest.BlockTokensOf(s)}/{block}", () => Fetch(s, block));
    }

    private async Task<int[]> Fetch(DatasetShard shard, int block)
    {
        var per = Manifest.BlockTokensOf(shard);
        var first = block * per;
        var count = Math.Min(per, shard.Tokens - first);
        var name = $"{_location.Display}: shard {shard.Name} block {block} (ids {first:N0} to {first + count:N0})";
        byte[] data;
        try
        {
            data = await _location.Reach(() => _location.Store.GetRangeAsync(_location.NameOf(shard.Name), first * Manifest.IdBytes, count * Manifest.IdBytes));
        }
        catch (BlobNotFoundException)
        {
            throw new InvalidDataException($"{_location.Display}: shard {shard.Name} is missing");
        }
        if (data.Length != count * Manifest.IdBytes || Convert.ToHexStringLower(SHA256.HashData(data)) != Manifest.BlockSha256(shard, block))
            throw new InvalidDataException($"{name} does not match its SHA-256 in the manifest (damaged or replaced); nothing was trained on it");
        var ids = CorpusSource.ReadIds(data, Manifest.IdBytes);
        for (var i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= _vocab)
                throw new InvalidDataException($"{name}: token id {ids[i]} at id {first + i:N0} of the shard is not below model.vocab {_vocab}");
        return ids;
    }
}
