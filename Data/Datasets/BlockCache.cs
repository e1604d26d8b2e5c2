namespace Elastic.Data.Datasets;

/// <summary>
/// The blocks of ids a process has read from datasets, least recently used first out once they hold more than their capacity:
/// shared by every job and device thread of a silo, so ranks that read the same windows (a tensor-parallel group, the stages of a
/// pipeline) fetch each block once. A block is keyed by its content (its shard's SHA-256, block size and index), so a key never
/// names two contents. A fetch in flight is shared too; one that failed is forgotten, and the next read tries again.
/// </summary>
public sealed class BlockCache(long capacityBytes)
{
    /// <summary>Megabytes the process's cache may hold (default 1024): <c>ELASTIC_DATA_CACHE_MB</c>.</summary>
    public const string CapacityVariable = "ELASTIC_DATA_CACHE_MB";

    private readonly Lock _gate = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = [];
    // Most recently used first.
    private readonly LinkedList<Entry> _recency = new();
    private long _bytes;

    /// <summary>The process's cache.</summary>
    public static BlockCache Shared { get; } = new(
        (long.TryParse(Environment.GetEnvironmentVariable(CapacityVariable), out var mb) && mb > 0 ? mb : 1024) << 20);

    public long CapacityBytes => capacityBytes;

    /// <summary>Bytes of the blocks held now (fetches in flight not counted).</summary>
    public long Bytes
    {
        get
        {
            lock (_gate) return _bytes;
        }
    }

    /// <summary>
    /// The block <paramref name="key"/> names, fetched by <paramref name="fetch"/> unless it is held or on its way. The task
    /// completes once the cache has counted the block (or forgotten the failure).
    /// </summary>
    public Task<int[]> Get(string key, Func<Task<int[]>> fetch)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(key, out var held))
            {
                _recency.Remove(held);
                _recency.AddFirst(held);
                return held.Value.Block;
            }
            var entry = new Entry(key);
            _entries[key] = _recency.AddFirst(entry);
            entry.Block = FetchAndSettle(entry, fetch);
            return entry.Block;
        }
    }

    private async Task<int[]> FetchAndSettle(Entry entry, Func<Task<int[]>> fetch)
    {
        int[] block;
        try
        {
            block = await Task.Run(fetch);
        }
        catch
        {
            lock (_gate)
                if (_entries.TryGetValue(entry.Key, out var node) && node.Value == entry) Remove(node);
            throw;
        }
        lock (_gate)
        {
            if (!_entries.TryGetValue(entry.Key, out var node) || node.Value != entry) return block;
            entry.Bytes = (long)block.Length * sizeof(int);
            _bytes += entry.Bytes;
            // Oldest first, fetches in flight kept; a reader holds its block's array whether or not the cache still does.
            for (var oldest = _recency.Last; oldest is not null && _bytes > capacityBytes;)
            {
                var newer = oldest.Previous;
                if (oldest.Value.Bytes > 0) Remove(oldest);
                oldest = newer;
            }
        }
        return block;
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _recency.Remove(node);
        _entries.Remove(node.Value.Key);
        _bytes -= node.Value.Bytes;
    }

    private sealed class Entry(string key)
    {
        public string Key => key;
        public Task<int[]> Block { get; set; } = null!;
        /// <summary>Zero until the block has arrived.</summary>
        public long Bytes { get; set; }
    }
}
