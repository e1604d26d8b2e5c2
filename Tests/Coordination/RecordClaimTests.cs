using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Microsoft.Extensions.Time.Testing;
using Orleans.Storage;

namespace Elastic.Tests.Coordination;

/// <summary>
/// A coordinator that takes over claims the job's record before it serves anyone (found by the fifth soak: chaos-2-9 was
/// shown 33, 30, 35 and 30 committed steps, by the new activation's read and by its predecessor on a silo declared dead,
/// which still wrote). The claim fences the predecessor's next write, and a record that moved on since the read is read
/// again and claimed instead, so what the new one shows is never behind what the old one did.
/// </summary>
public sealed class RecordClaimTests
{
    [Fact]
    public async Task A_record_a_predecessor_moved_on_after_the_read_is_read_again_and_claimed()
    {
        var state = new ZombieState(Record(steps: 30)) { Writes = { Record(steps: 35) } };
        var writer = new JobRecordWriter(state, _ => { }, new FakeTimeProvider(), () => () => { }, TimeSpan.Zero);

        Assert.True(await writer.ClaimAsync(attempts: 5, TimeSpan.Zero));

        Assert.Equal(35, StepLog.Count(state.State));
        Assert.Equal(35, StepLog.Count(state.Stored));
        Assert.Null(writer.Stale);
        Assert.Equal(2, state.Attempts);
    }

    [Fact]
    public async Task A_predecessor_that_keeps_writing_past_every_attempt_leaves_the_claim_undone_and_the_writer_stale()
    {
        var state = new ZombieState(Record(steps: 30)) { Writes = { Record(steps: 31), Record(steps: 32), Record(steps: 33) } };
        var writer = new JobRecordWriter(state, _ => { }, new FakeTimeProvider(), () => () => { }, TimeSpan.Zero);

        Assert.False(await writer.ClaimAsync(attempts: 3, TimeSpan.Zero));

        Assert.NotNull(writer.Stale);
        Assert.Equal(33, StepLog.Count(state.State));
    }

    [Fact]
    public async Task A_store_that_does_not_answer_leaves_the_claim_to_the_first_write()
    {
        var state = new ZombieState(Record(steps: 30)) { Down = true };
        var failures = new List<string>();
        var writer = new JobRecordWriter(state, failures.Add, new FakeTimeProvider(), () => () => { }, TimeSpan.Zero);

        Assert.False(await writer.ClaimAsync(attempts: 5, TimeSpan.Zero));

        Assert.Null(writer.Stale);
        Assert.Equal(["the job store is unreachable"], failures);
    }

    private static JobRecord Record(int steps)
    {
        var record = new JobRecord { Spec = TestSpecs.Tiny(steps: 100), State = JobState.Running, Generation = 1 };
        record.OpenSteps.AddRange(Enumerable.Range(1, steps).Select(s => new StepRecord(s, 2.0, 1e-3, 1.0, 1000, 100, null)));
        return record;
    }

    /// <summary>
    /// A job store a predecessor still writes to: before each of this writer's writes, the next of <see cref="Writes"/> lands
    /// first (its ETag moves, so this write fails); a read gives what was stored last.
    /// </summary>
    private sealed class ZombieState(JobRecord read) : IPersistentState<JobRecord>
    {
        public List<JobRecord> Writes { get; } = [];
        public bool Down { get; init; }
        public int Attempts { get; private set; }
        public JobRecord Stored { get; private set; } = read;

        public JobRecord State { get; set; } = read;
        public string? Etag { get; set; } = "1";
        public bool RecordExists => true;

        public Task WriteStateAsync()
        {
            Attempts++;
            if (Down) throw new IOException("the job store is unreachable");
            if (Writes.Count > 0)
            {
                Stored = Writes[0];
                Writes.RemoveAt(0);
                throw new InconsistentStateException("ETag mismatch");
            }
            Stored = State;
            return Task.CompletedTask;
        }

        public Task ReadStateAsync()
        {
            State = Stored;
            return Task.CompletedTask;
        }

        public Task ClearStateAsync() => Task.CompletedTask;
    }
}
