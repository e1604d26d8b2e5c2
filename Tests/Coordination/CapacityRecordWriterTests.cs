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

        while (!write.IsCompleted)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Yield();
        }
        await write;
        Assert.Equal((0, 1), (store.FailuresLeft, store.Writes));
    }

    [Fact]
    public async Task A_store_down_for_longer_than_the_patience_fails_the_write_with_its_error()
    {
        var time = new FakeTimeProvider();
        var store = new FlakyState { FailuresLeft = int.MaxValue };
        var write = new CapacityRecordWriter(store, time).WriteAsync();

        var waited = TimeSpan.Zero;
        while (!write.IsCompleted && waited < TimeSpan.FromMinutes(5))
        {
            time.Advance(TimeSpan.FromSeconds(1));
            waited += TimeSpan.FromSeconds(1);
            await Task.Yield();
        }
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

    private sealed class FlakyState : IPersistentState<CapacityRecord>
    {
        public int FailuresLeft, Conflicts, Writes, Reads;
        public CapacityRecord? Stored;
        public CapacityRecord State { get; set; } = new();
        public string? Etag { get; set; }
        public bool RecordExists => true;
        public Task ClearStateAsync() => Task.CompletedTask;

        public Task WriteStateAsync()
        {
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
