using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Grains.Telemetry;
using Elastic.Jobs;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A job's checkpoints: when one is due, starting it at a step boundary (each unit copies its share of the state to host
/// memory, the only part training waits for, and uploads it in the background), committing it while the next steps train
/// (manifest, then latest, fenced by generation, then retention), and never starting one before the previous committed.
/// A failed checkpoint does not stop training: the job is degraded until the next one commits. Restores come back
/// from the latest checkpoint, falling back past damaged ones, and wait out a store that does not answer for up to
/// <paramref name="storePatience"/> (found by the chaos soak: a storage blip while a job came back failed the job).
/// </summary>
public sealed class CheckpointCoordinator(IBlobStore store, string jobId, JobJournal journal, Action persistSoon, TimeProvider time, TimeSpan storePatience)
{
    /// <summary>The longest wait between two tries of a read the store did not answer.</summary>
    private static readonly TimeSpan LongestRetryWait = TimeSpan.FromSeconds(8);

    private Task? _inFlight;
    private bool _requested;
    private DateTimeOffset _lastBegan = time.GetUtcNow();

    private JobRecord Record => journal.Record;

    /// <summary>Asks for a checkpoint at the next step boundary; false when one is already asked for.</summary>
    public bool Request()
    {
        if (_requested) return false;
        _requested = true;
        return true;
    }

    public bool Requested => _requested;

    /// <summary>Whether to checkpoint after <paramref name="step"/>: on request, every N steps and after the last, or every T minutes.</summary>
    public bool Due(long step)
    {
        var c = Record.Spec.Checkpoint;
        return _requested
            || (c.EverySteps > 0 && (step % c.EverySteps == 0 || step == Record.Spec.Steps))
            || (c.EveryMinutes > 0 && time.GetUtcNow() - _lastBegan >= TimeSpan.FromMinutes(c.EveryMinutes));
    }

    /// <summary>Waits for the checkpoint in flight, if any, to commit or fail (a re-plan or the end comes after it).</summary>
    public async Task Settle()
    {
        if (_inFlight is not null) await _inFlight;
        _inFlight = null;
    }

    /// <summary>Starts the checkpoint of <paramref name="step"/>, written by <paramref name="writers"/> (the replicas of <paramref name="plan"/>).</summary>
    public async Task Begin(IReplicaGrain[] writers, ParallelPlan plan, long step)
    {
        using var span = ElasticTelemetry.Traces.StartActivity("checkpoint");
        span?.SetTag("job", jobId).SetTag("step", step);
        await Settle();
        (_requested, _lastBegan) = (false, time.GetUtcNow());
        try
        {
            await UnitCalls.OnAll(plan.ReplicaDevices(), writers.Select((r, i) => r.BeginCheckpoint(step, i, writers.Length)).ToArray(), $"checkpoint of step {step}");
            _inFlight = Commit(writers, plan, step);
        }
        catch (JobFailure e)
        {
            Failed(step, e.Message);
        }
    }

    /// <summary>Waits for the replicas' uploads, then writes the manifest and moves latest (fenced by generation), then applies retention.</summary>
    private async Task Commit(IReplicaGrain[] replicas, ParallelPlan plan, long step)
    {
        try
        {
            await UnitCalls.OnAll(plan.ReplicaDevices(), replicas.Select(r => r.FinishCheckpoint(step)).ToArray(), $"uploading the checkpoint of step {step}");
            var layout = CheckpointLayout.ForJob(jobId);
            var spec = Record.Spec;
            var manifest = await new CheckpointWriter(store, layout).CommitPartsAsync(new CheckpointManifest
            {
                JobId = jobId,
                Step = step,
                Generation = plan.Generation,
                Plan = plan.ToString(),
                CreatedAt = time.GetUtcNow(),
                Chunks = [],
                Metadata = new Dictionary<string, string> { ["spec"] = SpecJson.Serialize(spec) },
            }, Enumerable.Range(0, replicas.Length).SelectMany(r => Enumerable.Range(0, plan.Pp * plan.Tp).Select(u => UnitKeys.PartName(r, u / plan.Tp, u % plan.Tp))).ToList());
            var retention = await new CheckpointRetention(store, layout).ApplyAsync(spec.Checkpoint.KeepLast, spec.Checkpoint.KeepEvery);
            Record.LastCheckpointStep = step;
            Record.Degraded = false;
            // A coordinator that takes over must know every step up to the latest checkpoint.
            persistSoon();
            var seconds = (time.GetUtcNow() - _lastBegan).TotalSeconds;
            ElasticTelemetry.CheckpointDuration.Record(seconds, ElasticTelemetry.Job(jobId));
            ElasticTelemetry.Checkpoints.Add(1, ElasticTelemetry.Job(jobId));
            ElasticTelemetry.CheckpointBytes.Add(manifest.Chunks.Sum(c => c.ByteLength), ElasticTelemetry.Job(jobId));
            journal.Add(JobEventKinds.Checkpoint, $"step {step} committed in {store.Location}/{layout.Root} ({retention.Kept.Count} kept, {retention.Removed.Count + retention.OrphansRemoved.Count} removed)");
        }
        catch (Exception e)
        {
            Failed(step, e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// The checkpoint a job comes back from when no replica kept its state (its committed steps after it are trained again);
    /// null: from the start. Never one past the steps this coordinator has records of (a coordinator that took over from a
    /// lost one may know fewer steps than were checkpointed), so that every step in the report is one the state went through.
    /// </summary>
    public async Task<string?> ComeBackPoint()
    {
        var committed = await Committed("listing its checkpoints");
        var point = CheckpointReader.NewestAtMost(committed, journal.Committed);
        await journal.RewindTo(point?.Step ?? 0);
        return point?.Manifest;
    }

    /// <summary>
    /// Loads a checkpoint into every replica. When its stored data is damaged (a replica names the chunk), the job
    /// falls back to the next older committed checkpoint, records why and how many steps it lost, and tries again.
    /// </summary>
    public async Task<string> Restore(ParallelPlan plan, IReplicaGrain[] replicas, string manifest)
    {
        var layout = CheckpointLayout.ForJob(jobId);
        while (true)
        {
            Task[] calls = [];
            try
            {
                await WhileTheStoreDoesNotAnswer($"restoring {manifest}", async () =>
                {
                    calls = replicas.Select(r => r.Restore(manifest)).ToArray();
                    await UnitCalls.OnAll(plan.ReplicaDevices(), calls, $"restoring {manifest}");
                    return true;
                }, _ => calls.Where(c => c.IsFaulted).Select(c => c.Exception?.InnerException).ToList() is { Count: > 0 } failures && failures.All(f => f is StoreUnavailableException));
                return manifest;
            }
            catch (JobFailure) when (calls.Select(c => c.Exception?.InnerException).OfType<CheckpointUnreadableException>().FirstOrDefault() is { } damage)
            {
                var failed = layout.CheckpointOf(manifest) ?? throw new JobFailure($"{manifest} is not a checkpoint of job {jobId}");
                var marked = await MarkDamaged(new CheckpointPointer(failed.Step, failed.Generation, manifest), damage.Message);
                var previous = (await Committed("listing its checkpoints")).FirstOrDefault(c => c.Step < failed.Step || (c.Step == failed.Step && c.Generation < failed.Generation))
                    ?? throw new JobFailure($"{damage.Message}; no older checkpoint to fall back to");
                var lost = await journal.RewindTo(previous.Step);
                Record.LastCheckpointStep = previous.Step;
                journal.Add(JobEventKinds.CheckpointUnreadable, $"{damage.Message}; {marked}; falling back to the checkpoint of step {previous.Step} ({previous.Manifest}), {lost} more step(s) to train again");
                manifest = previous.Manifest;
            }
        }
    }

    /// <summary>
    /// Marks a damaged checkpoint so that retention keeps a sound one in its place (found by the chaos soak: a job that fell back
    /// twice had its last sound checkpoint removed while two damaged ones counted among the last kept). Says what became of it.
    /// </summary>
    private async Task<string> MarkDamaged(CheckpointPointer checkpoint, string why)
    {
        try
        {
            await new CheckpointReader(store, CheckpointLayout.ForJob(jobId)).MarkDamagedAsync(checkpoint, why);
            return "it is marked damaged and no longer counts as committed";
        }
        catch (Exception e) when (StoreFailures.IsUnavailable(e))
        {
            return $"marking it damaged failed ({StoreFailures.Describe(e)})";
        }
    }

    private Task<IReadOnlyList<CheckpointPointer>> Committed(string what) =>
        WhileTheStoreDoesNotAnswer(what, () => new CheckpointReader(store, CheckpointLayout.ForJob(jobId)).CommittedAsync(), StoreFailures.IsUnavailable);

    /// <summary>
    /// Runs <paramref name="read"/> again, waiting longer each time, while it fails because the store did not answer
    /// (<paramref name="unavailable"/>), for up to the store patience; the first such failure is an event.
    /// </summary>
    private async Task<T> WhileTheStoreDoesNotAnswer<T>(string what, Func<Task<T>> read, Func<Exception, bool> unavailable)
    {
        var started = time.GetTimestamp();
        var wait = TimeSpan.FromSeconds(1);
        for (var tries = 1; ; tries++)
        {
            try
            {
                return await read();
            }
            catch (Exception e) when (unavailable(e) && time.GetElapsedTime(started) + wait <= storePatience)
            {
                if (tries == 1)
                    journal.Add(JobEventKinds.CheckpointStoreUnavailable, $"{what}: the checkpoint store did not answer ({StoreFailures.Describe(e)}); trying again for up to {storePatience.TotalSeconds:0} s");
                await Task.Delay(wait, time);
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, LongestRetryWait.Ticks));
            }
        }
    }

    private void Failed(long step, string reason)
    {
        Record.Degraded = true;
        journal.Add(JobEventKinds.CheckpointFailed, $"step {step}: {reason}; training goes on and the next checkpoint retries");
    }
}
