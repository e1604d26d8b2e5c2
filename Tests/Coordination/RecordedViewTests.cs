using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Elastic.Tests.Coordination;

/// <summary>
/// A job shows only what its record in the store holds: a coordinator lost with its silo takes back every step and event
/// it had not written, so a watcher that saw one would see it vanish, or see its event index reused for something else.
/// The journal and its writer run here as in a grain (one turn at a time) over a store that is slow and often fails.
/// </summary>
public sealed class RecordedViewTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public Task Nothing_is_shown_before_the_store_holds_it_and_everything_is_once_it_does(int seed) => OneTurnAtATime(async () =>
    {
        var random = new Random(seed);
        var time = new FakeTimeProvider();
        var state = new FlakyState(random) { State = new JobRecord { Spec = TestSpecs.Tiny(steps: 300), State = JobState.Running } };
        JobRecordWriter? writer = null;
        var journal = new JobJournal(state, new StepLog(new MemoryBlobStore(), "job"), "job", time, NullLogger.Instance, () => writer!.WriteSoon());
        writer = new JobRecordWriter(state, _ => { }, time, journal.Recording, TimeSpan.FromMilliseconds(250));

        for (var step = 1; step <= 300; step++)
        {
            journal.Commit(step, [new ShardStepResult(step, 1.0 / step, 1e-3, 1.0, null)], 0.1);
            if (random.NextDouble() < 0.1) journal.Add(JobEventKinds.CheckpointRequested, $"at step {step}");
            if (random.NextDouble() < 0.5) await Task.Yield();
            time.Advance(TimeSpan.FromSeconds(1));

            var shown = journal.Status();
            Assert.True(shown.CommittedStep <= state.StoredSteps, $"step {shown.CommittedStep} shown, the store holds {state.StoredSteps}");
            Assert.Equal((long)step, shown.TrainedStep);
            var progress = await journal.Progress(0, 0, TimeSpan.Zero);
            Assert.Equal(Enumerable.Range(1, (int)shown.CommittedStep).Select(s => (long)s), progress.Steps.Select(s => s.Step));
            Assert.True(progress.Events.Count <= state.StoredEvents, $"{progress.Events.Count} events shown, the store holds {state.StoredEvents}");
        }
        Assert.True(state.Failures > 10, $"the store failed only {state.Failures} writes");

        state.FailureRate = 0;
        for (var wait = 0; journal.Status().CommittedStep < 300 && wait < 1000; wait++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(1);
        }
        var end = await journal.Progress(0, 0, TimeSpan.Zero);
        Assert.Equal(300L, end.Status.CommittedStep);
        Assert.Equal(300, end.Steps.Count);
        Assert.Equal(state.State.Events.Count, end.Events.Count);
    });

    [Fact]
    public Task A_watcher_waiting_for_progress_wakes_when_the_store_takes_a_step_not_when_it_is_trained() => OneTurnAtATime(async () =>
    {
        var time = new FakeTimeProvider();
        var state = new FlakyState(new Random(1)) { State = new JobRecord { Spec = TestSpecs.Tiny(steps: 10), State = JobState.Running }, FailureRate = 1 };
        JobRecordWriter? writer = null;
        var journal = new JobJournal(state, new StepLog(new MemoryBlobStore(), "job"), "job", time, NullLogger.Instance, () => writer!.WriteSoon());
        writer = new JobRecordWriter(state, _ => { }, time, journal.Recording, TimeSpan.FromMilliseconds(250));

        var watching = journal.Progress(0, 0, TimeSpan.FromMinutes(10));
        journal.Commit(1, [new ShardStepResult(1, 2.0, 1e-3, 1.0, null)], 0.1);
        for (var i = 0; i < 20; i++) await Task.Yield();
        Assert.False(watching.IsCompleted, "a watcher woke for a step the store does not hold");

        state.FailureRate = 0;
        time.Advance(TimeSpan.FromSeconds(2));
        var progress = await watching.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([1L], progress.Steps.Select(s => s.Step));
    });

    /// <summary>Runs <paramref name="body"/> and every continuation it schedules one at a time, as a grain's activation does.</summary>
    private static Task OneTurnAtATime(Func<Task> body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.None, new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler).Unwrap();

    /// <summary>
    /// A job store whose writes take a moment and fail at <see cref="FailureRate"/> before landing; it keeps what the last write
    /// that landed held, taken when the write began (as a grain storage serializes the state).
    /// </summary>
    private sealed class FlakyState(Random random) : IPersistentState<JobRecord>
    {
        public double FailureRate { get; set; } = 0.3;
        public long StoredSteps { get; private set; }
        public int StoredEvents { get; private set; }
        public int Failures { get; private set; }

        public JobRecord State { get; set; } = new();
        public string? Etag { get; set; }
        public bool RecordExists => true;

        public async Task WriteStateAsync()
        {
            var (steps, events) = (StepLog.Count(State), State.Events.Count);
            await Task.Yield();
            if (random.NextDouble() < FailureRate)
            {
                Failures++;
                throw new IOException("the job store is unreachable");
            }
            (StoredSteps, StoredEvents) = (steps, events);
        }

        public Task ClearStateAsync() => Task.CompletedTask;
        public Task ReadStateAsync() => Task.CompletedTask;
    }
}
