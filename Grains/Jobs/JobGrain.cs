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
using Orleans.GrainDirectory;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A job's coordinator: Pending -> Planning -> Running -> Completed / Failed / Cancelled. It allocates
/// devices, makes a plan with a new generation, prepares one replica per data-parallel rank, then runs
/// the steps and commits each one. It moves only small messages; tensors stay on the devices. Reentrant:
/// status and watch calls interleave with the training loop at its awaits.
/// </summary>
[Reentrant, OnDemandPlacement, GrainDirectory(Directory)]
public sealed partial class JobGrain(
    [PersistentState("job", StorageNames.Jobs)] IPersistentState<JobRecord> job,
    IOptions<JobOptions> options,
    IBlobStore checkpoints,
    ILogger<JobGrain> logger) : Grain, IJobGrain
{
    /// <summary>
    /// The strongly consistent grain directory the silo host registers for jobs and their units: at most one activation of
    /// each, even while silos leave (the default directory can lose registrations then and activate a second, empty unit).
    /// </summary>
    public const string Directory = "elastic-coordinators";

    private TaskCompletionSource _changed = NewSignal();
    private bool _cancelRequested;
    private Task? _checkpoint;
    private bool _checkpointRequested;
    private DateTimeOffset _lastCheckpointBegan = DateTimeOffset.UtcNow;
    private IReplicaGrain[] _units = [];
    private DateTimeOffset _lastReplan;
    private DateTimeOffset? _widerSince;
    private JobRecordWriter? _writer;
    private readonly RepeatedFailures _failures = new();

    private string JobId => this.GetPrimaryKeyString();
    private JobRecord Record => job.State;
    /// <summary>
    /// Writes the record: progress in the background (an outage of the store delays the write, never a step); plans, which
    /// fence generations, strictly before use (<see cref="NewPlan"/>).
    /// </summary>
    private JobRecordWriter Writer => _writer ??= new JobRecordWriter(job, reason => LogPersistFailed(logger, JobId, reason));
    private ICapacityGrain CapacityGrain => GrainFactory.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey);
    /// <summary>Calls the capacity grain, riding out its move to another silo when its own silo goes.</summary>
    private Task<T> OnCapacity<T>(Func<ICapacityGrain, Task<T>> call) => ClusterCallRetry.OnGrainContext(() => call(CapacityGrain));

    private Task OnCapacity(Func<ICapacityGrain, Task> call) => OnCapacity(async c =>
    {
        await call(c);
        return true;
    });

    /// <summary>The device counts (dp x tp) the job accepts, widest first.</summary>
    private IReadOnlyList<int> Widths => SpecValidator.DataParallelWidths(Record.Spec).Select(dp => dp * Tp).ToList();

    /// <summary>The job's tensor-parallel degree: every plan has it, so a replica is a block of Tp devices on one silo.</summary>
    private int Tp => Record.Spec.Parallel.Tensor;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (job.RecordExists && !Record.State.IsTerminal())
        {
            // The activation that drove this job went away: handed over by a silo that stopped gracefully, or lost with one that
            // died. This one takes over: it adopts the replicas that survive (and the steps they finished), or comes back from
            // the latest checkpoint.
            var takeOver = Record.HandedOver is { } handedOver
                ? new Change(ReplanCause.Leave, $"the coordinator moved: {handedOver}")
                : new Change(ReplanCause.Failure, "the coordinator was lost");
            AddEvent(Record.HandedOver is null ? "coordinator-recovered" : "coordinator-moved", Record.HandedOver is null
                ? $"the job's coordinator was lost with its silo at step {Record.Steps.Count} ({Record.State}); a new one takes over"
                : $"{Record.HandedOver}; a new one takes over");
            Record.HandedOver = null;
            _ = Record.Plan is not null ? Run(resumeFrom: null, adopt: takeOver) : Run(resumeFrom: null, comeBack: Record.Steps.Count > 0);
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// A coordinator whose silo stops gracefully leaves its latest record, marked as handed over, for the one that takes over;
    /// an ended job whose last write still waits for the store gets one more try.
    /// </summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (!job.RecordExists || (Record.State.IsTerminal() && _writer is not { Pending: true })) return;
        if (!Record.State.IsTerminal())
        {
            var why = reason.ReasonCode == DeactivationReasonCode.ShuttingDown ? "its silo is stopping" : reason.Description;
            Record.HandedOver = $"the job's coordinator stepped down at step {Record.Steps.Count} ({why})";
        }
        try
        {
            await Writer.WriteAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e)
        {
            LogPersistFailed(logger, JobId, e.Message);
        }
    }

    public async Task Start(TrainingSpec spec, DateTimeOffset submittedAt)
    {
        if (job.RecordExists) return;
        job.State = new JobRecord { Spec = spec, SubmittedAt = submittedAt, State = JobState.Pending };
        AddEvent("submitted", $"{spec.Name}: {spec.Steps} steps, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, devices {spec.Devices.Min}..{spec.Devices.Max}");
        await Writer.WriteAsync(TimeSpan.Zero);
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
        await Writer.WriteAsync(TimeSpan.Zero);
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
            Device = r.Device,
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

    /// <param name="resumeFrom">A checkpoint to load into the first plan.</param>
    /// <param name="adopt">Take over the replicas of the recorded plan (a new coordinator after the old one stepped down or was lost), re-planning for this change.</param>
    /// <param name="comeBack">Start from the latest checkpoint (a job that was waiting for devices when its coordinator was lost).</param>
    private async Task Run(string? resumeFrom, Change? adopt = null, bool comeBack = false)
    {
        this.DelayDeactivation(TimeSpan.FromDays(30));
        Outcome? outcome = null;
        try
        {
            if (comeBack) resumeFrom = await ComeBackPoint();
            if (adopt is not null)
            {
                var recorded = Record.Plan!;
                _units = Enumerable.Range(0, recorded.Dp).Select(r => GrainFactory.GetGrain<IReplicaGrain>(ReplicaGrain.KeyOf(JobId, recorded, r))).ToArray();
                if (await Replan(adopt))
                    outcome = await Train();
                if (outcome is null) resumeFrom = await ComeBackPoint();
            }
            while (outcome is null)
            {
                var plan = await Plan();
                if (plan is null)
                {
                    outcome = new Outcome(JobState.Cancelled, "cancelled", "cancelled before devices were allocated");
                    break;
                }
                _units = await Prepare(plan, adopt: new bool[plan.Dp]);
                if (resumeFrom is not null) await Restore(plan, _units, resumeFrom);
                // Null: capacity fell below the minimum; the job waits for devices and comes back from its latest checkpoint.
                outcome = await Train();
                if (outcome is null) resumeFrom = await ComeBackPoint();
            }
        }
        catch (StaleCoordinatorException e)
        {
            // Another activation drives the job (its record moved on): this one leaves the units and the record to it.
            LogStale(logger, JobId, e.Message);
            this.DelayDeactivation(TimeSpan.FromMinutes(-1));
            this.DeactivateOnIdle();
            return;
        }
        catch (Exception e)
        {
            outcome = new Outcome(JobState.Failed, "failed", e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}");
        }
        // A checkpoint in flight commits (or fails) first, so the last checkpoint a user sees never moves after the end.
        if (_checkpoint is not null) await _checkpoint;
        // Devices are free before anyone can see the job as ended: a job submitted next can have them.
        await ReleaseQuietly(_units);
        try
        {
            await OnCapacity(c => c.Release(JobId));
        }
        catch (Exception e)
        {
            LogReleaseFailed(logger, JobId, e.Message);
        }
        End(outcome.State, outcome.Kind, outcome.Message);
        try
        {
            await Writer.WriteAsync(options.Value.StoreOutagePatience);
        }
        catch (Exception e) when (e is not StaleCoordinatorException)
        {
            // The end is known here and shown to every caller; the store gets it when it comes back.
            Writer.WriteSoon();
        }
        this.DelayDeactivation(TimeSpan.FromMinutes(-1));
    }

    /// <summary>
    /// The checkpoint a job comes back from when no replica kept its state (its committed steps after it are trained again);
    /// null: from the start. Never one past the steps this coordinator has records of (a coordinator that took over from a
    /// lost one may know fewer steps than were checkpointed), so that every step in the report is one the state went through.
    /// </summary>
    private async Task<string?> ComeBackPoint()
    {
        var committed = await new CheckpointReader(checkpoints, CheckpointLayout.ForJob(JobId)).CommittedAsync();
        var point = committed.FirstOrDefault(c => c.Step <= Record.Steps.Count);
        RewindTo(point?.Step ?? 0);
        return point?.Manifest;
    }

    private async Task<ParallelPlan?> Plan()
    {
        Transition(JobState.Planning);
        var waiting = false;
        while (!_cancelRequested)
        {
            var devices = await OnCapacity(c => c.Allocate(new AllocationRequest(JobId, Widths, [], [], Tp)));
            if (devices.Count > 0)
            {
                var plan = await NewPlan(devices);
                AddEvent("planned", $"{plan}: " + string.Join(", ", Enumerable.Range(0, plan.Dp).Select(r => $"replica {r} on {Describe(plan.TensorGroupOf(r))}")));
                return plan;
            }
            if (!waiting)
            {
                waiting = true;
                AddEvent("waiting", $"waiting for devices: needs {string.Join(" or ", Widths)} free device(s)");
            }
            await Task.Delay(options.Value.CapacityPollInterval);
        }
        return null;
    }

    /// <summary>
    /// A plan in the next generation, persisted before any unit of it exists: a coordinator that takes over after this one
    /// is lost never reuses the generation, so nothing the lost one started can commit as if it were the new one's.
    /// </summary>
    private async Task<ParallelPlan> NewPlan(IReadOnlyList<DeviceSlot> devices)
    {
        var plan = new ParallelPlan(Record.Generation + 1, devices.Count / Tp, 1, Tp, devices);
        Record.Generation = plan.Generation;
        Record.Plan = plan;
        Record.Device = string.Join(", ", devices.Select(d => d.Model).Distinct());
        await Writer.WriteAsync(options.Value.StoreOutagePatience);
        return plan;
    }

    /// <summary>Prepares one replica per data-parallel rank; <paramref name="adopt"/>[r]: rank r takes over the state the previous generation left on its device.</summary>
    private async Task<IReplicaGrain[]> Prepare(ParallelPlan plan, bool[] adopt)
    {
        var assignment = new ShardAssignment(JobId, Record.Spec, plan, 0, 0, options.Value.CollectiveTimeout, JoinTimeout: options.Value.JoinTimeout);
        var replicas = Enumerable.Range(0, plan.Dp)
            .Select(r => GrainFactory.GetGrain<IReplicaGrain>(ReplicaGrain.KeyOf(JobId, plan, r))).ToArray();
        var prepared = new Task<long>[plan.Dp];
        for (var r = 0; r < plan.Dp; r++)
            prepared[r] = replicas[r].Prepare(assignment with { Replica = r, AdoptState = adopt[r] });
        try
        {
            Record.Parameters = (await OnAll(plan.ReplicaDevices(), prepared, $"preparing {plan}"))[0];
        }
        catch
        {
            await ReleaseQuietly(replicas);
            throw;
        }
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
                await OnAll(plan.ReplicaDevices(), calls, $"restoring {manifest}");
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

    /// <summary>
    /// Runs and commits steps until the last, re-planning at step boundaries when devices leave, join or fail. Null when
    /// capacity fell below the job's minimum: its state is checkpointed and it waits for devices.
    /// </summary>
    private async Task<Outcome?> Train()
    {
        var spec = Record.Spec;
        Record.StartedAt ??= DateTimeOffset.UtcNow;
        Transition(JobState.Running);
        _lastReplan = DateTimeOffset.UtcNow;
        for (var step = Record.Steps.Count + 1; step <= spec.Steps; step = Record.Steps.Count + 1)
        {
            if (Writer.Stale is { } stale) throw stale;
            if (_cancelRequested)
            {
                // A checkpoint asked for with the cancel (an interrupted `train`) is taken first, so the job can resume right here.
                if (_checkpointRequested && step > 1 && Record.LastCheckpointStep != step - 1) await BeginCheckpoint(_units, Record.Plan!, step - 1);
                return new Outcome(JobState.Cancelled, "cancelled", $"cancelled after step {step - 1} of {spec.Steps}");
            }
            if (await CapacityChange() is { } change)
            {
                if (!await Replan(change)) return null;
                continue;
            }
            var plan = Record.Plan!;
            var evaluate = step == spec.Steps || (spec.Eval.Every > 0 && step % spec.Eval.Every == 0);
            var watch = Stopwatch.StartNew();
            var calls = _units.Select(r => r.RunStep(step, evaluate)).ToArray();
            try
            {
                Commit(step, await OnAll(plan.ReplicaDevices(), calls, $"step {step}"), watch.Elapsed.TotalSeconds);
            }
            catch (JobFailure failure)
            {
                // Replicas that finished the step hold it (all of them the same bits): it counts. The rest re-plan.
                var finished = calls.Where(c => c.IsCompletedSuccessfully).Select(c => c.Result).ToArray();
                if (finished.Length > 0) Commit(step, finished, watch.Elapsed.TotalSeconds);
                if (FollowsTheJob(step, plan, calls) is { } repeated) return new Outcome(JobState.Failed, "failed", repeated);
                if (!await Replan(new Change(ReplanCause.Failure, failure.Message))) return null;
                continue;
            }
            if (CheckpointDue(step)) await BeginCheckpoint(_units, plan, step);
            if (step % options.Value.PersistEverySteps == 0) Writer.WriteSoon();
        }
        var final = Record.Plan!;
        var digests = await OnAll(final.ReplicaDevices(), _units.Select(r => r.Digest()).ToArray(), "the final digest");
        if (digests.Distinct().Count() != 1)
            throw new JobFailure($"replicas ended with different parameters: {string.Join(", ", digests.Select((d, r) => $"replica {r} {d[..12]}"))}");
        Record.FinalParameterDigest = digests[0];
        if (spec.Output.Directory is { } directory)
        {
            await OnAll(final.ReplicaDevices(), [_units[0].SaveModel(directory)], "saving the model");
            AddEvent("saved", $"the trained model is in {directory}");
        }
        return new Outcome(JobState.Completed, "completed", $"{spec.Steps} steps, final loss {Record.Steps[^1].Loss:F4}, finalParameterDigest {digests[0]}");
    }

    /// <summary>
    /// At a step boundary: must the job leave devices (a silo draining or gone), or may it grow? Growth waits for the
    /// minimum dwell since the last re-plan and for new devices to have settled, so that joins are taken together.
    /// </summary>
    private async Task<Change?> CapacityChange()
    {
        var plan = Record.Plan!;
        var review = await OnCapacity(c => c.Review(JobId, Widths, plan.Devices, Tp));
        if (review.Leaving.Count > 0)
            return new Change(review.Kind switch
            {
                LeaveKind.Preempted => ReplanCause.Preemption,
                LeaveKind.Lost => ReplanCause.Failure,
                _ => ReplanCause.Leave,
            }, review.LeavingReason ?? "devices are leaving") { Leaving = review.Leaving };
        if (review.WidestPlan <= plan.DeviceCount)
        {
            _widerSince = null;
            return null;
        }
        var now = DateTimeOffset.UtcNow;
        _widerSince ??= now;
        return now - _widerSince >= options.Value.JoinSettle && now - _lastReplan >= options.Value.MinDwell
            ? new Change(ReplanCause.Join, $"devices joined: dp {plan.Dp} can grow to {review.WidestPlan / Tp}")
            : null;
    }

    /// <summary>
    /// Moves the job to a new plan at a step boundary, in a new generation (whatever the old one still had in flight is
    /// discarded). Replicas that still answer keep their state on their devices; new ranks take it from the survivor
    /// that got furthest, over the data plane; only when no replica survived does the job go back to its latest
    /// checkpoint (and the event says how many steps that lost). False when the devices left are below the minimum.
    /// </summary>
    private async Task<bool> Replan(Change change)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ReplanOnce(change);
            }
            catch (Exception e) when (attempt < 3 && !_cancelRequested)
            {
                AddEvent("replan-failed", $"attempt {attempt}: {(e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}")}; trying again");
                change = change with { Cause = ReplanCause.Failure };
            }
        }
    }

    private async Task<bool> ReplanOnce(Change change)
    {
        var watch = Stopwatch.StartNew();
        var old = Record.Plan!;
        var oldUnits = _units;
        if (_checkpoint is not null) await _checkpoint;
        _checkpoint = null;

        // Who still answers, and how many steps each has taken.
        var probes = oldUnits.Select(u => u.CompletedSteps().WaitAsync(options.Value.ProbeTimeout)).ToArray();
        try
        {
            await Task.WhenAll(probes);
        }
        catch
        {
            // Units that did not answer are lost; the rest are survivors.
        }
        var alive = Enumerable.Range(0, oldUnits.Length).Where(r => probes[r].IsCompletedSuccessfully).ToList();
        var lost = Enumerable.Range(0, oldUnits.Length).Except(alive).ToList();
        var lostSilos = lost.SelectMany(r => old.TensorGroupOf(r)).Select(d => d.Silo).Distinct().ToList();
        // A unit that is only slow still holds its device lease: tell it to let go, without waiting for it.
        _ = ReleaseQuietly(lost.Select(r => oldUnits[r]).ToArray());
        long? sourceSteps = alive.Count > 0 ? alive.Max(r => probes[r].Result) : null;
        if (sourceSteps > Record.Steps.Count)
        {
            // Survivors finished steps this coordinator has no record of (it took over from a lost one): commit them first.
            var furthest = alive.First(r => probes[r].Result == sourceSteps);
            foreach (var result in await oldUnits[furthest].StepResults(Record.Steps.Count))
                if (result.Step == Record.Steps.Count + 1) Commit(result.Step, [result], result.Seconds);
        }
        var committed = Record.Steps.Count;

        var devices = await OnCapacity(c => c.Allocate(new AllocationRequest(JobId, Widths, alive.SelectMany(r => old.TensorGroupOf(r)).ToList(), lostSilos, Tp)));
        if (devices.Count == 0)
        {
            await WaitForCapacity(change, old, oldUnits, alive, probes, sourceSteps);
            return false;
        }

        // A replica is kept when the new allocation gives it the same devices, in the same tensor-rank order.
        var newGroups = devices.Chunk(Tp).ToList();
        var kept = alive.Where(r => newGroups.Any(g => g.SequenceEqual(old.TensorGroupOf(r)))).ToList();
        var keptAtSource = kept.Where(r => probes[r].Result == sourceSteps).ToList();
        // A survivor not in the new plan hands its state over before it goes, when no kept replica has it.
        int? donor = keptAtSource.Count == 0 && sourceSteps is not null ? alive.First(r => probes[r].Result == sourceSteps) : null;
        await OnAll(kept.Select(r => old.DeviceOf(r)).ToList(), kept.Select(r => oldUnits[r].Handover()).ToArray(), "handing state over");
        await ReleaseQuietly(alive.Except(kept).Where(r => r != donor).Select(r => oldUnits[r]).ToArray());

        var plan = await NewPlan(devices);
        var adoptedFrom = newGroups.Select(g => kept.FirstOrDefault(r => g.SequenceEqual(old.TensorGroupOf(r)), -1)).ToArray();
        _units = await Prepare(plan, adoptedFrom.Select(r => r >= 0).ToArray());

        string source;
        if (sourceSteps is { } steps)
        {
            var needy = Enumerable.Range(0, plan.Dp).Where(r => adoptedFrom[r] < 0 || probes[adoptedFrom[r]].Result != steps).ToList();
            source = needy.Count == 0 ? "kept on their devices" : await TransferState(plan, old, oldUnits, adoptedFrom, keptAtSource, donor, needy);
            if (donor is { } d) await ReleaseQuietly([oldUnits[d]]);
            RewindTo(steps);
        }
        else
        {
            var from = await ComeBackPoint();
            if (from is not null) await Restore(plan, _units, from);
            source = from is null ? "no replica survived and there is no checkpoint: training starts over" : $"no replica survived: from the checkpoint {from}";
        }
        var lostSteps = committed - Record.Steps.Count;
        _lastReplan = DateTimeOffset.UtcNow;
        _widerSince = null;
        Count(change.Cause);
        AddEvent("replanned", $"{Describe(change.Cause)}: {change.Detail}; {old} -> {plan}; state {source}; paused {watch.Elapsed.TotalSeconds:F2} s; {lostSteps} committed step(s) lost");
        Writer.WriteSoon();
        return true;
    }

    /// <summary>Copies the source's state to the ranks that lack it over a transfer group; the source is a kept survivor, else the donor.</summary>
    private async Task<string> TransferState(ParallelPlan plan, ParallelPlan old, IReplicaGrain[] oldUnits, int[] adoptedFrom, List<int> keptAtSource, int? donor, List<int> needy)
    {
        var (sourceUnit, sourceDevices, described) = keptAtSource.Count > 0
            ? (_units[Array.IndexOf(adoptedFrom, keptAtSource[0])], old.TensorGroupOf(keptAtSource[0]), $"from replica {Array.IndexOf(adoptedFrom, keptAtSource[0])}")
            : (oldUnits[donor!.Value], old.TensorGroupOf(donor.Value), $"from the leaving replica on {old.DeviceOf(donor.Value)}");
        var group = new StateTransferGroup($"{JobId}/g{plan.Generation}/state",
            [.. sourceDevices.Select(d => d.DataPlane), .. needy.SelectMany(r => plan.TensorGroupOf(r)).Select(d => d.DataPlane)], options.Value.CollectiveTimeout, Tp);
        await OnAll([sourceDevices[0], .. needy.Select(r => plan.DeviceOf(r))],
            [sourceUnit.TransferState(group, 0), .. needy.Select((r, i) => _units[r].TransferState(group, i + 1))], "transferring state");
        // Every replica must now hold the same bits; a re-plan that cannot show it is retried rather than trained on.
        var digests = await OnAll(plan.ReplicaDevices(), _units.Select(u => u.Digest()).ToArray(), "checking the transferred state");
        if (digests.Distinct().Count() != 1)
            throw new JobFailure($"after the state transfer the replicas differ: {string.Join(", ", digests.Select((d, r) => $"replica {r} {d[..12]}"))}");
        return $"{described} to {needy.Count} new rank(s) over the data plane";
    }

    /// <summary>
    /// Below the minimum: the survivor that got furthest checkpoints the whole state (unless the latest checkpoint already
    /// has it), every device is given back, and the job waits for capacity.
    /// </summary>
    private async Task WaitForCapacity(Change change, ParallelPlan old, IReplicaGrain[] oldUnits, List<int> alive, Task<long>[] probes, long? sourceSteps)
    {
        if (sourceSteps is { } steps && steps > (Record.LastCheckpointStep ?? 0))
        {
            // A survivor that stays writes the checkpoint: one on a draining silo may be gone before its upload ends.
            var writer = alive.Where(r => probes[r].Result == steps).OrderBy(r => old.TensorGroupOf(r).Any(change.Leaving.Contains) ? 1 : 0).First();
            RewindTo(steps);
            await BeginCheckpoint([oldUnits[writer]], old with { Devices = old.TensorGroupOf(writer), Dp = 1 }, steps);
            if (_checkpoint is not null) await _checkpoint;
            _checkpoint = null;
        }
        await ReleaseQuietly(oldUnits);
        _units = [];
        await OnCapacity(c => c.Release(JobId));
        Count(change.Cause);
        AddEvent("replanned", $"{Describe(change.Cause)}: {change.Detail}; fewer than {Record.Spec.Devices.Min} device(s) left: {old} stops, checkpointed at step {Record.LastCheckpointStep?.ToString() ?? "none"}, and the job waits for devices");
        Writer.WriteSoon();
    }

    private void Count(ReplanCause cause)
    {
        Record.Replans++;
        if (cause == ReplanCause.Preemption) Record.Preemptions++;
        if (cause == ReplanCause.Failure) Record.Failures++;
    }

    /// <summary>One device as itself; a tensor-parallel group as its silo and device indices.</summary>
    private static string Describe(IReadOnlyList<DeviceSlot> group) =>
        group.Count == 1 ? group[0].ToString() : $"{group[0].Silo}/devices {string.Join("+", group.Select(d => d.Device))}";

    private static string Describe(ReplanCause cause) => cause switch
    {
        ReplanCause.Join => "join",
        ReplanCause.Leave => "leave",
        ReplanCause.Preemption => "preemption",
        _ => "failure",
    };

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
    private async Task BeginCheckpoint(IReplicaGrain[] writers, ParallelPlan plan, long step)
    {
        if (_checkpoint is not null) await _checkpoint;
        (_checkpointRequested, _lastCheckpointBegan) = (false, DateTimeOffset.UtcNow);
        try
        {
            await OnAll(plan.ReplicaDevices(), writers.Select((r, i) => r.BeginCheckpoint(step, i, writers.Length)).ToArray(), $"checkpoint of step {step}");
            _checkpoint = CommitCheckpoint(writers, plan, step);
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
            await OnAll(plan.ReplicaDevices(), replicas.Select(r => r.FinishCheckpoint(step)).ToArray(), $"uploading the checkpoint of step {step}");
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
            }, Enumerable.Range(0, replicas.Length).SelectMany(r => Enumerable.Range(0, plan.Tp).Select(t => ShardGroupGrain.PartName(r, t))).ToList());
            var retention = await new CheckpointRetention(checkpoints, layout).ApplyAsync(spec.Checkpoint.KeepLast, spec.Checkpoint.KeepEvery);
            Record.LastCheckpointStep = step;
            Record.Degraded = false;
            // A coordinator that takes over must know every step up to the latest checkpoint.
            Writer.WriteSoon();
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

    /// <summary>Awaits one call per unit (on <paramref name="devices"/>, in order); any failure throws one <see cref="JobFailure"/> naming every unit's error.</summary>
    private static Task OnAll(IReadOnlyList<DeviceSlot> devices, Task[] calls, string what) =>
        OnAll(devices, calls.Select(async c => { await c; return true; }).ToArray(), what);

    private static async Task<T[]> OnAll<T>(IReadOnlyList<DeviceSlot> devices, Task<T>[] calls, string what)
    {
        try
        {
            return await Task.WhenAll(calls);
        }
        catch
        {
            var failures = calls.Select((call, r) => (call, r)).Where(c => c.call.IsFaulted)
                .Select(c => $"unit {c.r} on {devices[c.r]}: {c.call.Exception!.InnerException!.Message}");
            throw new JobFailure($"{what} failed: {string.Join("; ", failures)}");
        }
    }

    /// <summary>
    /// The engine error (not a collective's, which fails because a peer did) that has now failed this step on two silos:
    /// it follows the job, so the job fails instead of moving to a third silo. Null while a re-plan may still help.
    /// </summary>
    private string? FollowsTheJob(long step, ParallelPlan plan, Task<ShardStepResult>[] calls)
    {
        foreach (var (call, r) in calls.Select((call, r) => (call, r)).Where(c => c.call.IsFaulted))
            if (call.Exception!.GetBaseException() is UnitFailedException { Message: var error } && !error.StartsWith(CollectiveError, StringComparison.Ordinal)
                && _failures.Record(step, error, plan.DeviceOf(r).Silo.ToString()) is { } silos)
                return $"step {step} failed the same way on {silos.Count} silos ({string.Join(", ", silos)}): {error}; the error follows the job, so it is not moved to another silo";
        return null;
    }

    /// <summary>How a collective's failure reads once it left its unit (see <see cref="UnitFailedException.From"/>).</summary>
    private const string CollectiveError = "CollectiveException:";

    /// <summary>Releases units (their device leases) without failing: a unit on a lost silo has nothing left to release.</summary>
    private async Task ReleaseQuietly(IReplicaGrain[] units)
    {
        try
        {
            await Task.WhenAll(units.Select(r => r.Release())).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e)
        {
            LogReleaseFailed(logger, JobId, e.Message);
        }
    }

    private JobStatus Status() => new(JobId, Record.Spec.Name, Record.State, Record.Plan, Record.Steps.Count, Record.Spec.Steps,
        Record.Steps.Count > 0 ? Record.Steps[^1].Loss : null, TokensPerSecond(), Record.Error, Record.SubmittedAt, Record.FinalParameterDigest,
        Record.LastCheckpointStep, Record.Degraded, Record.Replans, Record.Preemptions, Record.Failures, Record.Device);

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

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: this coordinator is stale and stops: {Reason}")]
    private static partial void LogStale(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: persisting its record failed: {Reason}")]
    private static partial void LogPersistFailed(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: releasing devices failed: {Reason}")]
    private static partial void LogReleaseFailed(ILogger logger, string jobId, string reason);

    private sealed record Outcome(JobState State, string Kind, string Message);

    private enum ReplanCause { Join, Leave, Preemption, Failure }

    /// <summary>Why the job re-plans, and what happened, for the event.</summary>
    private sealed record Change(ReplanCause Cause, string Detail)
    {
        /// <summary>Devices on their way out (draining silos): still answering, but not where state should be written from.</summary>
        public IReadOnlyList<DeviceSlot> Leaving { get; init; } = [];
    }

    /// <summary>A failure whose message already says what went wrong, where.</summary>
    private sealed class JobFailure(string message) : Exception(message);
}
