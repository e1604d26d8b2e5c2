using System.Diagnostics;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Grains.Placement;
using Elastic.Grains.Replicas;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A job's coordinator: Pending -> Planning -> Running -> Completed / Failed / Cancelled. It allocates
/// devices, makes a plan with a new generation, prepares one replica per data-parallel rank, then runs
/// the steps and commits each one. It moves only small messages; tensors stay on the devices. Reentrant:
/// status and watch calls interleave with the training loop at its awaits.
/// </summary>
[Reentrant]
public sealed partial class JobGrain(
    [PersistentState("job", StorageNames.Jobs)] IPersistentState<JobRecord> job,
    IOptions<JobOptions> options,
    IBlobStore checkpoints,
    ILogger<JobGrain> logger) : Grain, IJobGrain
{
    private TaskCompletionSource _changed = NewSignal();
    private bool _cancelRequested;
    private Task? _checkpoint;
    private bool _checkpointRequested;
    private DateTimeOffset _lastCheckpointBegan = DateTimeOffset.UtcNow;

    private string JobId => this.GetPrimaryKeyString();
    private JobRecord Record => job.State;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (job.RecordExists && !Record.State.IsTerminal())
        {
            // The activation that drove this job went away with its silo; nothing drives it any more.
            End(JobState.Failed, "coordinator-lost", $"the silo coordinating this job left the cluster after step {Record.Steps.Count}; the job stopped");
            await job.WriteStateAsync(cancellationToken);
        }
    }

    public async Task Start(TrainingSpec spec, DateTimeOffset submittedAt)
    {
        if (job.RecordExists) return;
        job.State = new JobRecord { Spec = spec, SubmittedAt = submittedAt, State = JobState.Pending };
        AddEvent("submitted", $"{spec.Name}: {spec.Steps} steps, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, devices {spec.Devices.Min}..{spec.Devices.Max}");
        await job.WriteStateAsync();
        _ = Run(resumeFrom: null);
    }

    public async Task<JobStatus?> Resume(long? step)
    {
        if (!job.RecordExists) return null;
        if (Record.State is not (JobState.Failed or JobState.Cancelled))
            throw new InvalidOperationException($"job {JobId} is {Record.State}; only a failed or cancelled job can be resumed");
        var (manifestName, manifest) = await FindCheckpoint(step);
        var lost = RewindTo(manifest.Step);
        (Record.Error, Record.EndedAt, Record.FinalParameterDigest, _cancelRequested) = (null, null, null, false);
        Transition(JobState.Pending);
        AddEvent("resumed", $"from the checkpoint of step {manifest.Step} ({manifestName}); {lost} committed step(s) after it will be trained again");
        await job.WriteStateAsync();
        _ = Run(resumeFrom: manifestName);
        return Status();
    }

    public Task<JobStatus?> GetStatus() => Task.FromResult(job.RecordExists ? Status() : null);

    public async Task<JobProgress?> WaitForProgress(long afterStep, long afterEvent, TimeSpan maxWait)
    {
        if (!job.RecordExists) return null;
        if (!Record.State.IsTerminal() && Record.Steps.Count <= afterStep && Record.Events.Count <= afterEvent)
            await Task.WhenAny(_changed.Task, Task.Delay(maxWait));
        return new JobProgress(Status(),
            Record.Steps.Where(s => s.Step > afterStep).ToList(),
            Record.HeldOut.Where(e => e.Step > afterStep).ToList(),
            Record.Events.Where(e => e.Index > afterEvent).ToList());
    }

    public Task<JobStatus?> Cancel()
    {
        if (!job.RecordExists) return Task.FromResult<JobStatus?>(null);
        if (!Record.State.IsTerminal() && !_cancelRequested)
        {
            _cancelRequested = true;
            AddEvent("cancel-requested", "the job stops at the next step boundary");
        }
        return Task.FromResult<JobStatus?>(Status());
    }

    public Task<RunReport?> GetReport()
    {
        if (!job.RecordExists) return Task.FromResult<RunReport?>(null);
        var r = Record;
        var started = r.StartedAt ?? r.SubmittedAt;
        return Task.FromResult<RunReport?>(new RunReport
        {
            Spec = r.Spec,
            StartedAt = started,
            Device = r.DeviceKind,
            ThreadsPerDevice = r.Spec.Runtime.ThreadsPerDevice,
            Parameters = r.Parameters,
            Steps = r.Steps,
            HeldOut = r.HeldOut,
            Completed = r.State == JobState.Completed,
            WallSeconds = ((r.EndedAt ?? DateTimeOffset.UtcNow) - started).TotalSeconds,
            TokensPerSecond = TokensPerSecond(),
            FinalParameterDigest = r.FinalParameterDigest ?? "",
        });
    }

    public async Task<string> Export(long? step, string directory)
    {
        if (!job.RecordExists) throw new InvalidOperationException($"no job '{JobId}' in this cluster");
        var (_, manifest) = await FindCheckpoint(step);
        var (model, _) = await CheckpointExport.ExportAsync(new CheckpointReader(checkpoints, CheckpointLayout.ForJob(JobId)), manifest, directory);
        AddEvent("exported", $"the checkpoint of step {manifest.Step} as {model}");
        return model;
    }

    private async Task<(string Name, CheckpointManifest Manifest)> FindCheckpoint(long? step) =>
        await new CheckpointReader(checkpoints, CheckpointLayout.ForJob(JobId)).FindAsync(step)
        ?? throw new InvalidOperationException(step is null ? $"job {JobId} has no checkpoint" : $"job {JobId} has no checkpoint of step {step}");

    private async Task Run(string? resumeFrom)
    {
        this.DelayDeactivation(TimeSpan.FromDays(30));
        var capacity = GrainFactory.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey);
        IReplicaGrain[] replicas = [];
        Outcome outcome;
        try
        {
            var plan = await Plan(capacity);
            if (plan is null)
                outcome = new Outcome(JobState.Cancelled, "cancelled", "cancelled before devices were allocated");
            else
            {
                replicas = await Prepare(plan);
                if (resumeFrom is not null) await Restore(plan, replicas, resumeFrom);
                outcome = await Train(replicas);
            }
        }
        catch (Exception e)
        {
            outcome = new Outcome(JobState.Failed, "failed", e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}");
        }
        // A checkpoint in flight commits (or fails) first, so the last checkpoint a user sees never moves after the end.
        if (_checkpoint is not null) await _checkpoint;
        // Devices are free before anyone can see the job as ended: a job submitted next can have them.
        await ReleaseQuietly(replicas, capacity);
        End(outcome.State, outcome.Kind, outcome.Message);
        await job.WriteStateAsync();
        this.DelayDeactivation(TimeSpan.FromMinutes(-1));
    }

    private async Task<ParallelPlan?> Plan(ICapacityGrain capacity)
    {
        Transition(JobState.Planning);
        var widths = SpecValidator.DataParallelWidths(Record.Spec);
        var waiting = false;
        while (!_cancelRequested)
        {
            var devices = await capacity.Allocate(JobId, widths);
            if (devices.Count > 0)
            {
                var plan = new ParallelPlan(Record.Generation + 1, devices.Count, 1, 1, devices);
                Record.Generation = plan.Generation;
                Record.Plan = plan;
                AddEvent("planned", $"{plan}: " + string.Join(", ", devices.Select((d, r) => $"replica {r} on {d}")));
                return plan;
            }
            if (!waiting)
            {
                waiting = true;
                AddEvent("waiting", $"waiting for devices: needs {string.Join(" or ", widths)} free device(s)");
            }
            await Task.Delay(options.Value.CapacityPollInterval);
        }
        return null;
    }

    private async Task<IReplicaGrain[]> Prepare(ParallelPlan plan)
    {
        var assignment = new ShardAssignment(JobId, Record.Spec, plan, 0, 0, options.Value.CollectiveTimeout);
        var replicas = Enumerable.Range(0, plan.Dp)
            .Select(r => GrainFactory.GetGrain<IReplicaGrain>(ReplicaGrain.KeyOf(JobId, plan.Generation, r))).ToArray();
        var prepared = new Task<long>[plan.Dp];
        for (var r = 0; r < plan.Dp; r++)
            using (DeviceTarget.On(plan.DeviceOf(r).Silo))
                prepared[r] = replicas[r].Prepare(assignment with { Replica = r });
        var parameters = await OnAll(plan, prepared, "preparing");
        Record.Parameters = parameters[0];
        return replicas;
    }

    /// <summary>
    /// Loads a checkpoint into every replica. When its stored data is damaged (a replica names the chunk), the job
    /// falls back to the next older committed checkpoint, records why and how many steps it lost, and tries again.
    /// </summary>
    private async Task Restore(ParallelPlan plan, IReplicaGrain[] replicas, string manifest)
    {
        var layout = CheckpointLayout.ForJob(JobId);
        IReadOnlyList<CheckpointPointer>? committed = null;
        while (true)
        {
            var calls = replicas.Select(r => r.Restore(manifest)).ToArray();
            try
            {
                await OnAll(plan, calls, $"restoring {manifest}");
                return;
            }
            catch (JobFailure) when (calls.Select(c => c.Exception?.InnerException).OfType<CheckpointUnreadableException>().FirstOrDefault() is { } damage)
            {
                committed ??= await new CheckpointReader(checkpoints, layout).CommittedAsync();
                var failed = layout.CheckpointOf(manifest) ?? throw new JobFailure($"{manifest} is not a checkpoint of job {JobId}");
                var previous = committed.FirstOrDefault(c => c.Step < failed.Step || (c.Step == failed.Step && c.Generation < failed.Generation))
                    ?? throw new JobFailure($"{damage.Message}; no older checkpoint to fall back to");
                var lost = RewindTo(previous.Step);
                Record.LastCheckpointStep = previous.Step;
                AddEvent("checkpoint-unreadable", $"{damage.Message}; falling back to the checkpoint of step {previous.Step} ({previous.Manifest}), {lost} more step(s) to train again");
                manifest = previous.Manifest;
            }
        }
    }

    /// <summary>Forgets the committed steps after <paramref name="step"/> (they will be trained again); returns how many.</summary>
    private long RewindTo(long step)
    {
        var lost = Record.Steps.RemoveAll(s => s.Step > step);
        Record.HeldOut.RemoveAll(e => e.Step > step);
        return lost;
    }

    private async Task<Outcome> Train(IReplicaGrain[] replicas)
    {
        var spec = Record.Spec;
        var plan = Record.Plan!;
        Record.StartedAt ??= DateTimeOffset.UtcNow;
        Transition(JobState.Running);
        for (long step = Record.Steps.Count + 1; step <= spec.Steps; step++)
        {
            if (_cancelRequested) return new Outcome(JobState.Cancelled, "cancelled", $"cancelled after step {step - 1} of {spec.Steps}");
            var evaluate = step == spec.Steps || (spec.Eval.Every > 0 && step % spec.Eval.Every == 0);
            var watch = Stopwatch.StartNew();
            var results = await OnAll(plan, replicas.Select(r => r.RunStep(step, evaluate)).ToArray(), $"step {step}");
            Commit(step, results, watch.Elapsed.TotalSeconds);
            if (CheckpointDue(step)) await BeginCheckpoint(replicas, plan, step);
            if (step % options.Value.PersistEverySteps == 0) await job.WriteStateAsync();
        }
        var digests = await OnAll(plan, replicas.Select(r => r.Digest()).ToArray(), "the final digest");
        if (digests.Distinct().Count() != 1)
            throw new JobFailure($"replicas ended with different parameters: {string.Join(", ", digests.Select((d, r) => $"replica {r} {d[..12]}"))}");
        Record.FinalParameterDigest = digests[0];
        if (spec.Output.Directory is { } directory)
        {
            await OnAll(plan, [replicas[0].SaveModel(directory)], "saving the model");
            AddEvent("saved", $"the trained model is in {directory}");
        }
        return new Outcome(JobState.Completed, "completed", $"{spec.Steps} steps, final loss {Record.Steps[^1].Loss:F4}, finalParameterDigest {digests[0]}");
    }

    public Task<JobStatus?> RequestCheckpoint()
    {
        if (!job.RecordExists) return Task.FromResult<JobStatus?>(null);
        if (!Record.State.IsTerminal() && !_checkpointRequested)
        {
            _checkpointRequested = true;
            AddEvent("checkpoint-requested", "a checkpoint is taken at the next step boundary");
        }
        return Task.FromResult<JobStatus?>(Status());
    }

    /// <summary>Whether to checkpoint after <paramref name="step"/>: on request, every N steps and after the last, or every T minutes.</summary>
    private bool CheckpointDue(long step)
    {
        var c = Record.Spec.Checkpoint;
        return _checkpointRequested
            || (c.EverySteps > 0 && (step % c.EverySteps == 0 || step == Record.Spec.Steps))
            || (c.EveryMinutes > 0 && DateTimeOffset.UtcNow - _lastCheckpointBegan >= TimeSpan.FromMinutes(c.EveryMinutes));
    }

    /// <summary>
    /// Starts a checkpoint at a step boundary: each replica copies its share of the state to host memory (the only
    /// part training waits for) and uploads it in the background; the commit runs while the next steps train. A
    /// checkpoint never starts before the previous one committed.
    /// </summary>
    private async Task BeginCheckpoint(IReplicaGrain[] replicas, ParallelPlan plan, long step)
    {
        if (_checkpoint is not null) await _checkpoint;
        (_checkpointRequested, _lastCheckpointBegan) = (false, DateTimeOffset.UtcNow);
        try
        {
            await OnAll(plan, replicas.Select(r => r.BeginCheckpoint(step)).ToArray(), $"checkpoint of step {step}");
            _checkpoint = CommitCheckpoint(replicas, plan, step);
        }
        catch (JobFailure e)
        {
            CheckpointFailed(step, e.Message);
        }
    }

    /// <summary>Waits for the replicas' uploads, then writes the manifest and moves latest (fenced by generation), then applies retention.</summary>
    private async Task CommitCheckpoint(IReplicaGrain[] replicas, ParallelPlan plan, long step)
    {
        try
        {
            await OnAll(plan, replicas.Select(r => r.FinishCheckpoint(step)).ToArray(), $"uploading the checkpoint of step {step}");
            var layout = CheckpointLayout.ForJob(JobId);
            var spec = Record.Spec;
            await new CheckpointWriter(checkpoints, layout).CommitPartsAsync(new CheckpointManifest
            {
                JobId = JobId,
                Step = step,
                Generation = plan.Generation,
                Plan = plan.ToString(),
                CreatedAt = DateTimeOffset.UtcNow,
                Chunks = [],
                Metadata = new Dictionary<string, string> { ["spec"] = SpecJson.Serialize(spec) },
            }, Enumerable.Range(0, plan.Dp).Select(r => $"r{r}").ToList());
            var retention = await new CheckpointRetention(checkpoints, layout).ApplyAsync(spec.Checkpoint.KeepLast, spec.Checkpoint.KeepEvery);
            Record.LastCheckpointStep = step;
            Record.Degraded = false;
            AddEvent("checkpoint", $"step {step} committed in {checkpoints.Location}/{layout.Root} ({retention.Kept.Count} kept, {retention.Removed.Count + retention.OrphansRemoved.Count} removed)");
        }
        catch (Exception e)
        {
            CheckpointFailed(step, e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>A failed checkpoint does not stop training: the job is degraded until the next one commits.</summary>
    private void CheckpointFailed(long step, string reason)
    {
        Record.Degraded = true;
        AddEvent("checkpoint-failed", $"step {step}: {reason}; training goes on and the next checkpoint retries");
    }

    /// <summary>Commits a step once every replica reported it; replicas that disagree on the loss mean the layout broke its promise.</summary>
    private void Commit(long step, ShardStepResult[] results, double seconds)
    {
        var first = results[0];
        if (results.Any(r => r.Loss != first.Loss))
            throw new JobFailure($"step {step}: replicas disagree on the loss ({string.Join(", ", results.Select(r => r.Loss))})");
        var tokens = (double)Record.Spec.Batch.Global * Record.Spec.Model.Context;
        Record.Steps.Add(new StepRecord(step, first.Loss, first.LearningRate, first.GradNorm, tokens / seconds, seconds * 1000));
        Record.TrainingSeconds += seconds;
        if (results.Select(r => r.HeldOutLoss).FirstOrDefault(l => l is not null) is { } heldOut)
            Record.HeldOut.Add(new EvalRecord(step, heldOut));
        Signal();
    }

    /// <summary>Awaits one call per replica; any failure fails the job with every replica's error named.</summary>
    private static Task OnAll(ParallelPlan plan, Task[] calls, string what) =>
        OnAll(plan, calls.Select(async c => { await c; return true; }).ToArray(), what);

    private static async Task<T[]> OnAll<T>(ParallelPlan plan, Task<T>[] calls, string what)
    {
        try
        {
            return await Task.WhenAll(calls);
        }
        catch
        {
            var failures = calls.Select((call, r) => (call, r)).Where(c => c.call.IsFaulted)
                .Select(c => $"replica {c.r} on {plan.DeviceOf(c.r)}: {c.call.Exception!.InnerException!.Message}");
            throw new JobFailure($"{what} failed in {plan}: {string.Join("; ", failures)}");
        }
    }

    /// <summary>Releases the replicas (their device leases), then the allocation, so the capacity grain never hands out a device still leased.</summary>
    private async Task ReleaseQuietly(IReplicaGrain[] replicas, ICapacityGrain capacity)
    {
        try
        {
            await Task.WhenAll(replicas.Select(r => r.Release())).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e)
        {
            LogReleaseFailed(logger, JobId, e.Message);
        }
        try
        {
            await capacity.Release(JobId);
        }
        catch (Exception e)
        {
            LogReleaseFailed(logger, JobId, e.Message);
        }
    }

    private JobStatus Status() => new(JobId, Record.Spec.Name, Record.State, Record.Plan, Record.Steps.Count, Record.Spec.Steps,
        Record.Steps.Count > 0 ? Record.Steps[^1].Loss : null, TokensPerSecond(), Record.Error, Record.SubmittedAt, Record.FinalParameterDigest,
        Record.LastCheckpointStep, Record.Degraded);

    private double TokensPerSecond() => Record.TrainingSeconds > 0
        ? (double)Record.Spec.Batch.Global * Record.Spec.Model.Context * Record.Steps.Count / Record.TrainingSeconds
        : 0;

    private void Transition(JobState state)
    {
        LogTransition(logger, JobId, Record.State, state);
        Record.State = state;
        Signal();
    }

    private void End(JobState state, string kind, string message)
    {
        Transition(state);
        Record.EndedAt = DateTimeOffset.UtcNow;
        if (state == JobState.Failed) Record.Error = message;
        AddEvent(kind, message);
    }

    private void AddEvent(string kind, string message)
    {
        Record.Events.Add(new JobEvent(Record.Events.Count + 1, DateTimeOffset.UtcNow, kind, message));
        Signal();
    }

    private void Signal()
    {
        var changed = _changed;
        _changed = NewSignal();
        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    [LoggerMessage(Level = LogLevel.Information, Message = "job {JobId}: {From} -> {To}")]
    private static partial void LogTransition(ILogger logger, string jobId, JobState from, JobState to);

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: releasing devices failed: {Reason}")]
    private static partial void LogReleaseFailed(ILogger logger, string jobId, string reason);

    private sealed record Outcome(JobState State, string Kind, string Message);

    /// <summary>A failure whose message already says what went wrong, where.</summary>
    private sealed class JobFailure(string message) : Exception(message);
}
