using Elastic.Grains.Capacity;
using Microsoft.Extensions.Time.Testing;
using Orleans.Storage;

namespace Elastic.Tests.Coordination;

/// <summary>
/// The capacity record through storage outages (found by the chaos suite, where a burst of storage resets failed a job
/// through the capacity grain's write): retried with backoff for up to two minutes, a lost reply that landed resolved.
/// </summary>
public sealed class CapacityRecordWriterTests
{
    [Fact]
    public async Task A_store_that_fails_for_a_while_delays_the_write_and_the_write_lands()
    {
        var time = new FakeTimeProvider();
        var store = new FlakyState { FailuresLeft = 5 };
        var write = new CapacityRecordWriter(store, time).WriteAsync();

        await PaceRetries(write, store, time);
        await write;
        Assert.Equal((0, 1), (store.FailuresLeft, store.Writes));
    }

    [Fact]
    public async Task A_store_down_for_longer_than_the_patience_fails_the_write_with_its_error()
    {
        var time = new FakeTimeProvider();
        var store = new FlakyState { FailuresLeft = int.MaxValue };
        var write = new CapacityRecordWriter(store, time).WriteAsync();

        var waited = await PaceRetries(write, store, time);
        var error = await Assert.ThrowsAsync<OrleansException>(() => write);
        Assert.Contains("storage provider", error.Message);
        Assert.InRange(waited, CapacityRecordWriter.Patience - TimeSpan.FromSeconds(6), CapacityRecordWriter.Patience + TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task A_write_whose_reply_was_lost_but_landed_is_written_again_over_the_stored_record()
    {
        var store = new FlakyState { Conflicts = 1 };
        store.State.Claims["job-a"] = new Claim(new("t", 0, DateTimeOffset.UnixEpoch), [2], DateTimeOffset.UnixEpoch);

        await new CapacityRecordWriter(store, new FakeTimeProvider()).WriteAsync();

        Assert.Equal((1, 1), (store.Reads, store.Writes));
        Assert.True(store.Stored!.Claims.ContainsKey("job-a"), "our state, not the stored one, must be what is written");
    }

    /// <summary>
    /// Moves the fake clock on while <paramref name="write"/> runs, in steps of 100 ms but never more than 10 s (twice the
    /// longest backoff) past the store's last attempt: a writer that lags the loop on a loaded machine (found in CI: the loop
    /// ran two minutes ahead before the first retry) still sees the clock its own retries make. Returns the time moved on.
    /// </summary>
    private static async Task<TimeSpan> PaceRetries(Task write, FlakyState store, FakeTimeProvider time)
    {
        var start = time.GetUtcNow();
        var (seen, lastAttempt) = (-1, start);
        var limit = System.Diagnostics.Stopwatch.StartNew();
        while (!write.IsCompleted)
        {
            Assert.True(limit.Elapsed < TimeSpan.FromMinutes(1), $"the write did not end within a minute ({store.Attempts} attempts)");
            if (store.Attempts != seen) (seen, lastAttempt) = (store.Attempts, time.GetUtcNow());
            if (time.GetUtcNow() - lastAttempt < TimeSpan.FromSeconds(10)) time.Advance(TimeSpan.FromMilliseconds(100));
            await Task.Delay(1);
        }
        return time.GetUtcNow() - start;
    }

    private sealed class FlakyState : IPersistentState<CapacityRecord>
    {
        public int FailuresLeft, Conflicts, Writes, Reads, Attempts;
        public CapacityRecord? Stored;
        public CapacityRecord State { get; set; } = new();
        public string? Etag { get; set; }
        public bool RecordExists => true;
        public Task ClearStateAsync() => Task.CompletedTask;

        public Task WriteStateAsync()
        {
            Attempts++;
            if (FailuresLeft > 0)
            {
                FailuresLeft--;
                throw new OrleansException("Error from storage provider AzureTableGrainStorage.capacity during WriteStateAsync");
            }
            if (Conflicts > 0)
            {
                Conflicts--;
                throw new InconsistentStateException("ETag mismatch");
            }
            Writes++;
            Stored = State;
            return Task.CompletedTask;
        }

        public Task ReadStateAsync()
        {
            Reads++;
            State = new CapacityRecord();
            return Task.CompletedTask;
        }
    }
}
