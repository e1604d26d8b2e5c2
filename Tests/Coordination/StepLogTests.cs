using System.Runtime.CompilerServices;
using System.Text.Json;
using Elastic.Checkpoints.Stores;
using Elastic.Grains.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Tests.Coordination;

/// <summary>
/// A job's step history: the record stays bounded however many steps the job commits, the whole history reads back
/// in order (also by a new coordinator from the stored record), rewinds reach into sealed history, and a store outage
/// delays sealing without losing a step.
/// </summary>
public sealed class StepLogTests
{
    private static StepRecord Step(long i, double salt = 0) => new(i, 1.0 / i + salt, 1e-3, 0.5, 1000 + i, 12.5);

    private static async Task Commit(StepLog log, JobRecord record, long from, long through, double salt = 0)
    {
        for (var i = from; i <= through; i++)
        {
            log.Append(record, Step(i, salt));
            await log.Settled();
        }
    }

    [Fact]
    public async Task A_200000_step_history_keeps_the_record_bounded_and_reads_back_whole_through_a_new_coordinator()
    {
        var store = new MemoryBlobStore();
        var record = new JobRecord();
        var log = new StepLog(store, "long-job");

        await Commit(log, record, 1, 20_000);
        var sizeAt20k = JsonSerializer.SerializeToUtf8Bytes(record).Length;
        await Commit(log, record, 20_001, 200_000);
        var stored = JsonSerializer.SerializeToUtf8Bytes(record);

        Assert.Equal(200_000, StepLog.Count(record));
        Assert.True(record.OpenSteps.Count < 2 * StepLog.SegmentSize, $"{record.OpenSteps.Count} steps open");
        // Ten times the steps, the same size (up to longer numbers).
        Assert.True(stored.Length < sizeAt20k * 1.05, $"the record grew from {sizeAt20k} to {stored.Length} bytes");
        Assert.True(stored.Length < 512 * 1024, $"{stored.Length} bytes: more than half a table entity");

        // A coordinator that takes over has only the stored record and the store.
        var readBack = await new StepLog(store, "long-job").ReadAsync(JsonSerializer.Deserialize<JobRecord>(stored)!, afterStep: 0);
        Assert.Equal(Enumerable.Range(1, 200_000).Select(i => Step(i)), readBack);
        var page = await log.ReadAsync(record, afterStep: 123_456, max: 5000);
        Assert.Equal(Enumerable.Range(123_457, 5000).Select(i => Step(i)), page);
    }

    [Fact]
    public async Task A_rewind_into_sealed_history_reopens_its_segment_and_later_steps_replace_the_old_ones()
    {
        var store = new MemoryBlobStore();
        var record = new JobRecord();
        var log = new StepLog(store, "rewound");
        await Commit(log, record, 1, 5_500);

        var lost = await log.RewindAsync(record, 2_345);
        Assert.Equal(5_500 - 2_345, lost);
        Assert.Equal(2_345, StepLog.Count(record));
        Assert.Equal(2_345, StepLog.Last(record)!.Step);

        // Trained again (other timings: other records), past where the old history ended.
        await Commit(log, record, 2_346, 6_000, salt: 1);
        var all = await log.ReadAsync(record, 0);
        Assert.Equal(Enumerable.Range(1, 2_345).Select(i => Step(i)).Concat(Enumerable.Range(2_346, 6_000 - 2_345).Select(i => Step(i, 1))), all);
    }

    [Fact]
    public async Task While_the_store_is_down_steps_wait_in_the_record_and_are_sealed_when_it_returns()
    {
        var store = new FlakyStore { Down = true };
        var record = new JobRecord();
        var failures = new List<string>();
        var log = new StepLog(store, "outage", failures.Add);

        await Commit(log, record, 1, 2_500);
        Assert.Equal(2_500, StepLog.Count(record));
        Assert.Equal(0, record.SealedSteps);
        Assert.Contains("sealing steps 1..1000 of job outage failed", failures[0]);

        store.Down = false;
        await Commit(log, record, 2_501, 2_600);
        Assert.Equal(1_000, record.SealedSteps);
        Assert.Equal(Enumerable.Range(1, 2_600).Select(i => Step(i)), await log.ReadAsync(record, 0));
    }

    /// <summary>A memory store that refuses every call while <see cref="Down"/>.</summary>
    private sealed class FlakyStore : IBlobStore
    {
        private readonly MemoryBlobStore _inner = new();

        public bool Down { get; set; }

        public string Location => "flaky";

        private void Check()
        {
            if (Down) throw new IOException("the store is down");
        }

        public Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default)
        {
            Check();
            return _inner.PutCreateOnlyAsync(name, content, cancellation);
        }

        public Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken cancellation = default)
        {
            Check();
            return _inner.GetRangeAsync(name, offset, length, cancellation);
        }

        public Task<VersionedBlob?> GetVersionedAsync(string name, CancellationToken cancellation = default)
        {
            Check();
            return _inner.GetVersionedAsync(name, cancellation);
        }

        public Task<bool> TrySwapAsync(string name, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellation = default)
        {
            Check();
            return _inner.TrySwapAsync(name, content, expectedVersion, cancellation);
        }

        public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellation = default)
        {
            Check();
            await foreach (var name in _inner.ListAsync(prefix, cancellation)) yield return name;
        }

        public Task DeleteAsync(string name, CancellationToken cancellation = default)
        {
            Check();
            return _inner.DeleteAsync(name, cancellation);
        }
    }
}
