using Elastic.Data.Datasets;

namespace Elastic.Tests.Data;

/// <summary>
/// The process's cache of dataset blocks: one fetch per block however many readers ask at once, least recently used out first
/// once over its bound, and a failed fetch forgotten so that the next read tries again.
/// </summary>
public sealed class BlockCacheTests
{
    private const int BlockBytes = 100 * sizeof(int);

    [Fact]
    public async Task Readers_asking_for_a_block_at_once_share_one_fetch()
    {
        var cache = new BlockCache(10 * BlockBytes);
        var fetches = 0;
        var release = new TaskCompletionSource();
        async Task<int[]> Fetch()
        {
            Interlocked.Increment(ref fetches);
            await release.Task;
            return new int[100];
        }

        var readers = Enumerable.Range(0, 8).Select(_ => cache.Get("a/0", Fetch)).ToList();
        release.SetResult();
        var blocks = await Task.WhenAll(readers);

        Assert.Equal(1, fetches);
        Assert.All(blocks, b => Assert.Same(blocks[0], b));
    }

    [Fact]
    public async Task Over_its_bound_the_least_recently_used_block_goes_first()
    {
        var cache = new BlockCache(2 * BlockBytes);
        var fetched = new List<string>();
        Task<int[]> Get(string key) => cache.Get(key, () =>
        {
            lock (fetched) fetched.Add(key);
            return Task.FromResult(new int[100]);
        });

        await Get("a");
        await Get("b");
        await Get("a");
        await Get("c");
        await Get("a");
        await Get("b");

        Assert.Equal(["a", "b", "c", "b"], fetched);
        Assert.InRange(cache.Bytes, 0, cache.CapacityBytes);
    }

    [Fact]
    public async Task A_failed_fetch_is_forgotten_and_the_next_read_fetches_again()
    {
        var cache = new BlockCache(10 * BlockBytes);
        var attempts = 0;
        Task<int[]> Fetch() => ++attempts == 1 ? Task.FromException<int[]>(new IOException("storage cannot be read (503)")) : Task.FromResult(new int[100]);

        await Assert.ThrowsAsync<IOException>(() => cache.Get("a", Fetch));
        var block = await cache.Get("a", Fetch);

        Assert.Equal(100, block.Length);
        Assert.Equal(2, attempts);
        Assert.Equal(BlockBytes, cache.Bytes);
    }
}
