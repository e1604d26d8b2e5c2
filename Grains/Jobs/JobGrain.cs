using System.Security.Cryptography;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Grains.Placement;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Parallelism;
using Elastic.Planning;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.GrainDirectory;
using Orleans.Serialization;

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
    TimeProvider time,
    DeepCopier<JobRecord> copier,
    ILogger<JobGrain> logger) : Grain, IJobGrain, IRemindable
{
    /// <summary>
    /// The strongly consistent grain directory the silo host registers for jobs and their units: at most one activation of
    /// each, even while silos leave (the default directory can lose registrations then and activate a second, empty unit).
    /// </summary>
    public const string Directory = "elastic-coordinators";

    private CheckpointCoordinator? _checkpoints;
    private IReplicaGrain[] _units = [];
    private (int Generation, byte[] Secret)? _peerSecret;
    private ElasticityPolicy? _policy;
    private JobRecordWriter? _writer;
    private JobJournal? _journal;
    private LayoutChooser? _chooser;
    private readonly RepeatedFailures _failures = new(options.Value.MaxStepFailures);

    private string JobId => this.GetPrimaryKeyString();
    private JobRecord Record => job.State;
    private long Committed => Journal.Committed;
    private CheckpointCoordinator Checkpoints => _checkpoints ??= new CheckpointCoordinator(checkpoints, JobId, Journal, () => Writer.WriteSoon(), time, options.Value.StoreOutagePatience);
    private ElasticityPolicy Policy => _policy ??= new ElasticityPolicy(options.Value, time);
    private JobJournal Journal => _journal ??=
        new JobJournal(job, new StepLog(checkpoints, JobId, reason => LogPersistFailed(logger, JobId, reason)), JobId, time, logger, () => Writer.WriteSoon());
    /// <summary>
    /// Writes the record: progress in the background (an outage of the store delays the write, never a step); plans, which
    /// fence generations, strictly before use (<see cref="NewPlan"/>).
    /// </summary>
    private JobRecordWriter Writer => _writer ??= new JobRecordWriter(job, reason => LogPersistFailed(logger, JobId, reason), time, () => Journal.Recording(), options.Value.RecordInterval);
    private ICapacityGrain CapacityGrain => GrainFactory.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey);
    /// <summary>Calls the capacity grain, riding out its move to another silo when its own silo goes.</summary>
    private Task<T> OnCapacity<T>(Func<ICapacityGrain, Task<T>> call) => ClusterCallRetry.OnGrainContext(() => call(CapacityGrain));

    private Task OnCapacity(Func<ICapacityGrain, Task> call) => OnCapacity(async c =>
    {
        await call(c);
        return true;
    });

    /// <summary>Where the job stands in the scheduler's order.</summary>
    private JobStanding Standing => new(Record.Tenant, Record.Spec.Priority, Record.SubmittedAt);

    /// <summary>The job's planner: its layouts ranked on the devices it could hold.</summary>
    private LayoutChooser Chooser => _chooser ??= new LayoutChooser(Record.Spec);

    /// <summary>The device counts (dp x pp x tp) some layout of the job runs on, widest first: what it claims in the queue.</summary>
    private IReadOnlyList<int> Widths => Chooser.Widths;

    /// <summary>
    /// The planner's ranking on the thread pool: a search over a large cluster takes a noticeable fraction of a second, which
    /// must not hold the silo's scheduler (a busy scheduler makes healthy silos look dead). Its caches see one search at a time:
    /// only the training loop, which awaits each, ranks.
    /// </summary>
    private Task<PlanRanking> Rank(CapacityReview review, IReadOnlyCollection<SiloAddress>? exclude = null)
    {
        // Taken here: the record behind it is the activation's to read, not a pool thread's.
        var chooser = Chooser;
        return Task.Run(() => chooser.Rank(review, exclude));
    }

    /// <summary>The job's layout now: its plan's, or before its first plan what the spec says with nothing chosen.</summary>
    private Layout Current => Record.Plan?.ToLayout() ?? SpecLayout.At(Record.Spec, 1);

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!job.RecordExists || Record.State.IsTerminal()) return;
        // Claimed before anything is served (found by the fifth soak: chaos-2-9 was shown 33, 30, 35 and 30 committed steps by
        // this activation's read and a predecessor on a silo declared dead that still wrote). The store is given a moment
        // only: an activation held back by its outage answers no one meanwhile. The record read again may have ended.
        await Writer.ClaimAsync(attempts: 5, TimeSpan.FromSeconds(2));
        if (Record.State.IsTerminal()) return;
        // The activation that drove this job went away: handed over by a silo that stopped gracefully, or lost with one that
        // died. This one takes over: it adopts the replicas that survive (and the steps they finished), or comes back from
        // the latest checkpoint.
        var takeOver = Record.HandedOver is { } handedOver
            ? new ReplanChange(ReplanCause.Leave, $"the coordinator moved: {handedOver}") { TakeOver = true }
            : new ReplanChange(ReplanCause.Failure, "the coordinator was lost") { TakeOver = true };
        Journal.Add(Record.HandedOver is null ? JobEventKinds.CoordinatorRecovered : JobEventKinds.CoordinatorMoved, Record.HandedOver is null
            ? $"the job's coordinator was lost with its silo at step {Committed} ({Record.State}); a new one takes over"
            : $"{Record.HandedOver}; a new one takes over");
        Record.HandedOver = null;
        _ = KeepAwake();
        _ = Record.Plan is not null ? Run(resumeFrom: null, adopt: takeOver) : Run(resumeFrom: null, comeBack: Committed > 0);
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
            Record.HandedOver = $"the job's coordinator stepped down at step {Committed} ({why})";
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

    /// <summary>The start under way: the grain is reentrant, and a retried submission can come while the first waits for the store.</summary>
    private Task? _starting;

    public async Task Start(TrainingSpec spec, DateTimeOffset submittedAt, string tenant)
    {
        // Found by the chaos soak: a retry that came during the first start's write started a second run of the job beside it.
        if (_starting is { } starting)
        {
            await starting;
            return;
        }
        if (job.RecordExists) return;
        _starting = StartOnce(spec, submittedAt, tenant);
        try
        {
            await _starting;
        }
        catch
        {
            // Not written: a later retry starts afresh.
            _starting = null;
            throw;
        }
    }

    private async Task StartOnce(TrainingSpec spec, DateTimeOffset submittedAt, string tenant)
    {
        job.State = new JobRecord { Spec = spec, SubmittedAt = submittedAt, State = JobState.Pending, Tenant = tenant };
        Journal.Add(JobEventKinds.Submitted, $"{spec.Name}: {spec.Steps} steps, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, devices {spec.Devices.Min}..{spec.Devices.Max}");
        await Writer.WriteAsync(TimeSpan.Zero);
        await KeepAwake();
        _ = Run(resumeFrom: null);
    }

    public async Task<JobStatus?> Resume(long? step)
    {
        if (!job.RecordExists) return null;
        if (Record.State is not (JobState.Failed or JobState.Cancelled))
            throw new InvalidOperationException($"job {JobId} is {Record.State}; only a failed or cancelled job can be resumed");
        if (step > Committed)
            throw new InvalidOperationException($"job {JobId} has {Committed} committed step(s); its checkpoint of step {step} is past them (it came back from an older checkpoint and trained those steps again): resume from step {Committed} or earlier");
        var (manifestName, manifest) = await FindCheckpoint(step, atMost: Committed);
        var before = copier.Copy(Record);
        var lost = await Journal.RewindTo(manifest.Step);
        (Record.Error, Record.EndedAt, Record.FinalParameterDigest, Record.CancelRequested) = (null, null, null, false);
        Journal.Transition(JobState.Pending);
        Journal.Add(JobEventKinds.Resumed, $"from the checkpoint of step {manifest.Step} ({manifestName}); {lost} committed step(s) after it will be trained again");
        try
        {
            await Writer.WriteAsync(TimeSpan.Zero);
        }
        catch (Exception e) when (!CoordinatorFence.Replaced(e))
        {
            // Nothing of a resume the store did not take may stay: the record goes back to what the store holds.
            job.State = before;
            throw new StoreUnavailableException($"the job store did not take the resume ({StoreFailures.Describe(e)}); job {JobId} stays {before.State}: resume it again when the store is back");
        }
        await KeepAwake();
        _ = Run(resumeFrom: manifestName);
        return Journal.Status();
    }

    public Task<JobStatus?> GetStatus() => Task.FromResult(job.RecordExists ? Journal.Status() : null);

    public async Task<JobProgress?> WaitForProgress(long afterStep, long afterEvent, TimeSpan maxWait) =>
        job.RecordExists ? await Journal.Progress(afterStep, afterEvent, maxWait) : null;

    public Task<JobStatus?> Cancel()
    {
        if (!job.RecordExists) return Task.FromResult<JobStatus?>(null);
        if (!Record.State.IsTerminal() && !Record.CancelRequested)
        {
            Record.CancelRequested = true;
            Journal.Add(JobEventKinds.CancelRequested, "the job stops at the next step boundary");
            Writer.WriteSoon();
        }
        return Task.FromResult<JobStatus?>(Journal.Status());
    }

    public async Task<RunReport?> GetReport() => job.RecordExists ? await Journal.Report() : null;

    public async Task<string> Export(long? step, string directory)
    {
        if (!job.RecordExists) throw new InvalidOperationException($"no job '{JobId}' in this cluster");
        var (_, manifest) = await FindCheckpoint(step);
        var (model, _) = await CheckpointExport.ExportAsync(new CheckpointReader(checkpoints, CheckpointLayout.ForJob(JobId)), manifest, directory);
        Journal.Add(JobEventKinds.Exported, $"the checkpoint of step {manifest.Step} as {model}");
        return model;
    }

    /// <param name="atMost">Without <paramref name="step"/>: the newest checkpoint at or before this step (a resume), not the latest.</param>
    private async Task<(string Name, CheckpointManifest Manifest)> FindCheckpoint(long? step, long? atMost = null)
    {
        (string, CheckpointManifest)? found;
        try
        {
            var reader = new CheckpointReader(checkpoints, CheckpointLayout.ForJob(JobId));
            found = step is null && atMost is { } last ? await reader.NewestAtMostAsync(last) : await reader.FindAsync(step);
        }
        catch (Exception e) when (StoreFailures.IsUnavailable(e))
        {
            throw new StoreUnavailableException($"the checkpoint store {checkpoints.Location} did not answer ({StoreFailures.Describe(e)}); job {JobId} stays {Record.State}: try again when it is back");
        }
        return found ?? throw new InvalidOperationException(step is null ? $"job {JobId} has no checkpoint" : $"job {JobId} has no checkpoint of step {step}");
    }

    /// <param name="resumeFrom">A checkpoint to load into the first plan.</param>
    /// <param name="adopt">Take over the replicas of the recorded plan (a new coordinator after the old one stepped down or was lost), re-planning for this change.</param>
    /// <param name="comeBack">Start from the latest checkpoint (a job that was waiting for devices when its coordinator was lost).</param>
    private async Task Run(string? resumeFrom, ReplanChange? adopt = null, bool comeBack = false)
    {
        this.DelayDeactivation(TimeSpan.FromDays(30));
        CoordinatorFence.Mark(GrainContext.Address.SiloAddress!);
        Outcome? outcome = null;
        try
        {
            // The device counts the job accepts come from every pipeline depth and tp the spec allows: counted off the scheduler.
            var chooser = Chooser;
            await Task.Run(() => chooser.Widths);
            if (comeBack) resumeFrom = await ComeBack();
            if (adopt is not null)
            {
                var recorded = Record.Plan!;
                _units = Enumerable.Range(0, recorded.Dp).Select(r => GrainFactory.GetGrain<IReplicaGrain>(UnitKeys.Replica(JobId, recorded, r))).ToArray();
                if (await Replan(adopt))
                    outcome = await Train();
                if (outcome is null) resumeFrom = await ComeBack();
            }
            var failedPrepares = 0;
            while (outcome is null)
            {
                var plan = await Plan();
                if (plan is null)
                {
                    outcome = new Outcome(JobState.Cancelled, JobEventKinds.Cancelled, "cancelled before devices were allocated");
                    break;
                }
                var restoring = false;
                try
                {
                    _units = await Prepare(plan, adopt: new bool[plan.Dp], options.Value.JoinTimeout);
                    restoring = resumeFrom is not null;
                    if (resumeFrom is not null) await Checkpoints.Restore(plan, _units, resumeFrom);
                }
                // A failure that names no unit (a checkpoint that is not the job's, none left to fall back to) is the job's own.
                catch (Exception e) when (!Record.CancelRequested && !CoordinatorFence.Replaced(e) && e is not JobFailure { Calls.Count: 0 })
                {
                    var what = $"{(restoring ? "restoring its checkpoint on" : "preparing")} {plan}";
                    if (e is JobFailure failure && FollowsTheJob(what, Committed + 1, plan, failure.Calls) is { } repeated)
                    {
                        outcome = new Outcome(JobState.Failed, JobEventKinds.Failed, repeated);
                        break;
                    }
                    // A unit that could not join (a peer's link down, a device not yet let go) or a silo that went away while the
                    // units prepared or restored (the fifth soak failed two jobs so) is a fault of the moment, not the job's: it
                    // plans again, as a re-plan would, waiting longer each time it fails in a row.
                    if (restoring) await ReleaseQuietly(_units);
                    var pause = options.Value.CapacityPollInterval * Math.Min(++failedPrepares, 10);
                    Journal.Add(JobEventKinds.ReplanFailed, $"{what} failed ({(e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}")}); planning again in {pause.TotalSeconds:0.#} s");
                    await OnCapacity(async c =>
                    {
                        await c.Release(JobId);
                        return true;
                    });
                    await Task.Delay(pause, time);
                    continue;
                }
                failedPrepares = 0;
                // Null: capacity fell below the minimum; the job waits for devices and comes back from its latest checkpoint.
                outcome = await Train();
                if (outcome is null) resumeFrom = await ComeBack();
            }
        }
        catch (Exception e) when (CoordinatorFence.Replaced(e))
        {
            // Another activation drives the job (its record moved on, or silos refuse this one's calls): this one leaves the
            // units and the record to it.
            LogStale(logger, JobId, e.Message);
            this.DelayDeactivation(TimeSpan.FromMinutes(-1));
            this.DeactivateOnIdle();
            return;
        }
        catch (Exception e)
        {
            var error = e is JobFailure ? e.Message : $"{e.GetType().Name}: {e.Message}";
            // Asked to stop, the job is not retried and ends where the user wanted it to: what broke on the way is said, not a failure.
            outcome = Record.CancelRequested
                ? new Outcome(JobState.Cancelled, JobEventKinds.Cancelled, $"cancelled after step {Committed} of {Record.Spec.Steps} ({error})")
                : new Outcome(JobState.Failed, JobEventKinds.Failed, error);
        }
        // A checkpoint in flight commits (or fails) first, so the last checkpoint a user sees never moves after the end.
        await Checkpoints.Settle();
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
        Journal.End(outcome.State, outcome.Kind, outcome.Message);
        try
        {
            await Writer.WriteAsync(options.Value.StoreOutagePatience);
        }
        catch (Exception e) when (!CoordinatorFence.Replaced(e))
        {
            // The end is known here and shown to every caller; the store gets it when it comes back.
            Writer.WriteSoon();
        }
        await StopWaking();
        this.DelayDeactivation(TimeSpan.FromMinutes(-1));
    }

    /// <summary>
    /// A reminder wakes this grain while the job has not ended: if its coordinator was lost (say while it waited for devices and
    /// so held none, which the recovery watcher does not look at), the activation the tick causes takes over. The tick itself has
    /// nothing to do, but for a job that ended.
    /// </summary>
    public Task ReceiveReminder(string reminderName, TickStatus status) =>
        !job.RecordExists || Record.State.IsTerminal() ? StopWaking() : Task.CompletedTask;

    private async Task KeepAwake()
    {
        try
        {
            await this.RegisterOrUpdateReminder(WakeReminder, options.Value.WakePeriod, options.Value.WakePeriod);
        }
        catch (Exception e)
        {
            LogReminderFailed(logger, JobId, e.Message);
        }
    }

    private async Task StopWaking()
    {
        try
        {
            if (await this.GetReminder(WakeReminder) is { } reminder) await this.UnregisterReminder(reminder);
        }
        catch (Exception e)
        {
            LogReminderFailed(logger, JobId, e.Message);
        }
    }

    private const string WakeReminder = "wake";

    private async Task<ParallelPlan?> Plan()
    {
        Journal.Transition(JobState.Planning);
        string? said = null;
        // The layout the spec starts on, when it names one and this is the job's first plan.
        var start = Record.Plan is null && Record.Spec.Parallel.Start is { } text ? SpecLayout.Asked(Record.Spec, Current, ParallelLayout.Parse(text)) : null;
        while (!Record.CancelRequested)
        {
            var review = await OnCapacity(c => c.Review(JobId, Standing, Widths, []));
            var ranking = await Rank(review);
            var layout = start is not null && Fits(start, review) ? start : ranking.Choice?.Layout;
            if (layout is not null)
            {
                var allocation = await OnCapacity(c => c.Allocate(new AllocationRequest(JobId, Standing, [layout.Devices], [], [], layout.Tp)));
                if (allocation.Devices.Count == layout.Devices)
                {
                    var predicted = Chooser.Predict(layout, review);
                    Record.PredictedStepSeconds = predicted.Step.Seconds;
                    var plan = await NewPlan(allocation.Devices, layout);
                    Journal.Add(JobEventKinds.Planned, $"{plan}{(layout == start ? " (the spec's start)" : "")}, predicted {predicted.TokensPerSecond:N0} tokens/s: "
                        + string.Join(", ", Enumerable.Range(0, plan.Dp).Select(r => $"replica {r} on {Describe(plan.ReplicaGroupOf(r))}"))
                        + (Journal.Stages(plan) is { } stages ? $"; {stages}" : ""));
                    return plan;
                }
            }
            // Said again only when its place in the queue or the reason changes.
            var share = review.Share;
            var waiting = (layout is null
                    ? $"waiting for devices: no layout fits the {review.Offer?.Sum(o => o.Devices) ?? 0} device(s) it could have ({ranking.Rejected.FirstOrDefault() ?? "none"}); some layout runs on {string.Join(" or ", Widths.Reverse().Take(3))} device(s)"
                    : $"waiting for devices: needs {layout.Devices} free device(s) for {layout}")
                + (share?.Position is { } position ? $"; number {position} in the queue (priority {share.Standing.Priority})" : "")
                + (share?.Note is { } note ? $"; {note}" : "");
            if (waiting != said) Journal.Add(JobEventKinds.Waiting, said = waiting);
            await Task.Delay(options.Value.CapacityPollInterval, time);
        }
        return null;
    }

    /// <summary>
    /// The checkpoint the job comes back from when no replica kept its state (null: the start); the committed steps after it are
    /// declared lost, with how many, so that no step ever disappears from the record unsaid.
    /// </summary>
    private async Task<string?> ComeBack()
    {
        var before = Committed;
        var point = await Checkpoints.ComeBackPoint();
        if (Committed < before)
            Journal.Add(JobEventKinds.Resumed, $"no replica kept the state: from {(point is null ? "the start" : $"the checkpoint of step {Committed}")}; {before - Committed} committed step(s) after it will be trained again",
                new ReplanFields("come-back", Record.Plan?.ToLayout().ToString() ?? "", "", 0, before - Committed, 0));
        return point;
    }

    /// <summary>Whether the offer holds <paramref name="layout"/>: a group of tp devices on one silo for every stage of every replica, within the job's share.</summary>
    private static bool Fits(Layout layout, CapacityReview review) =>
        layout.Devices <= review.Cap && InventoryShape.Of(review.Offer ?? []).Blocks(layout.Tp) >= (long)layout.Dp * layout.Pp;

    /// <summary>
    /// A plan in the next generation, persisted before any unit of it exists: a coordinator that takes over after this one
    /// is lost never reuses the generation, so nothing the lost one started can commit as if it were the new one's.
    /// </summary>
    private async Task<ParallelPlan> NewPlan(IReadOnlyList<DeviceSlot> devices, Layout layout)
    {
        var plan = ParallelPlan.Of(Record.Generation + 1, layout with { Dp = devices.Count / layout.ReplicaDevices }, devices);
        Record.Generation = plan.Generation;
        Record.Plan = plan;
        Record.Device = string.Join(", ", devices.Select(d => d.Model).Distinct());
        await Writer.WriteAsync(options.Value.StoreOutagePatience);
        return plan;
    }

    /// <summary>
    /// The data-plane secret of <paramref name="plan"/>'s generation: drawn once, kept in memory only (a generation never outlives
    /// its coordinator: a new one re-plans into a generation of its own), handed to the units with their assignments.
    /// </summary>
    private byte[] PeerSecret(ParallelPlan plan)
    {
        if (_peerSecret?.Generation != plan.Generation) _peerSecret = (plan.Generation, RandomNumberGenerator.GetBytes(32));
        return _peerSecret.Value.Secret;
    }

    /// <summary>What replica 0 of <paramref name="plan"/> runs: the spec resolved for its layout, the timeouts, the generation's secret.</summary>
    private ShardAssignment Assignment(ParallelPlan plan) => new(JobId, SpecLayout.Resolve(Record.Spec, plan.ToLayout()), plan, 0, 0,
        options.Value.CollectiveTimeout, JoinTimeout: options.Value.JoinTimeout, PeerSecret: PeerSecret(plan));

    /// <summary>Prepares one replica per data-parallel rank; <paramref name="adopt"/>[r]: rank r takes over the state the previous generation left on its device.</summary>
    private async Task<IReplicaGrain[]> Prepare(ParallelPlan plan, bool[] adopt, TimeSpan joinTimeout)
    {
        var (deviceIds, transport) = await DeviceGroupIds.DrawAsync(GrainFactory, JobId, plan);
        if (transport is not null) Journal.Add(JobEventKinds.DeviceTransport, transport);
        var assignment = Assignment(plan) with { JoinTimeout = joinTimeout, DeviceGroupIds = deviceIds };
        var replicas = Enumerable.Range(0, plan.Dp)
            .Select(r => GrainFactory.GetGrain<IReplicaGrain>(UnitKeys.Replica(JobId, plan, r))).ToArray();
        var prepared = new Task<long>[plan.Dp];
        for (var r = 0; r < plan.Dp; r++)
            prepared[r] = replicas[r].Prepare(assignment with { Replica = r, AdoptState = adopt[r] });
        try
        {
            Record.Parameters = (await UnitCalls.OnAll(plan.ReplicaDevices(), prepared, $"preparing {plan}"))[0];
        }
        catch
        {
            // A replica that adopted state leaves it on its devices again: the next attempt finds it there.
            var adopted = Enumerable.Range(0, plan.Dp).Where(r => adopt[r] && prepared[r].IsCompletedSuccessfully).ToList();
            await Task.WhenAll(adopted.Select(r => replicas[r].Handover()).Append(ReleaseQuietly(replicas.Where((_, r) => !adopted.Contains(r)).ToArray())));
            throw;
        }
        return replicas;
    }

    /// <summary>
    /// Runs and commits steps until the last, re-planning at step boundaries when devices leave, join or fail. Null when
    /// capacity fell below the job's minimum: its state is checkpointed and it waits for devices.
    /// </summary>
    private async Task<Outcome?> Train()
    {
        var spec = Record.Spec;
        Record.StartedAt ??= time.GetUtcNow();
        Journal.Transition(JobState.Running);
        Policy.Replanned();
        for (var step = Committed + 1; step <= spec.Steps; step = Committed + 1)
        {
            if (Writer.Stale is { } stale) throw stale;
            if (Record.CancelRequested)
            {
                // A checkpoint asked for with the cancel (an interrupted `train`) is taken first, so the job can resume right here.
                if (Checkpoints.Requested && step > 1 && Record.LastCheckpointStep != step - 1) await Checkpoints.Begin(_units, Record.Plan!, step - 1);
                return new Outcome(JobState.Cancelled, JobEventKinds.Cancelled, $"cancelled after step {step - 1} of {spec.Steps}");
            }
            if (await CapacityChange() is { } change)
            {
                if (!await Replan(change)) return null;
                continue;
            }
            var plan = Record.Plan!;
            var evaluate = step == spec.Steps || (spec.Eval.Every > 0 && step % spec.Eval.Every == 0);
            var began = time.GetTimestamp();
            var calls = _units.Select(r => r.RunStep(step, evaluate)).ToArray();
            try
            {
                Journal.Commit(step, await UnitCalls.OnAll(plan.ReplicaDevices(), calls, $"step {step}"), time.GetElapsedTime(began).TotalSeconds);
            }
            catch (JobFailure failure)
            {
                // Replicas that finished the step hold it (all of them the same bits): it counts. The rest re-plan.
                var finished = calls.Where(c => c.IsCompletedSuccessfully).Select(c => c.Result).ToArray();
                if (finished.Length > 0) Journal.Commit(step, finished, time.GetElapsedTime(began).TotalSeconds);
                if (FollowsTheJob($"step {step}", step, plan, calls) is { } repeated) return new Outcome(JobState.Failed, JobEventKinds.Failed, repeated);
                if (_failures.FailedTooOftenInARow(step) is { } times)
                    return new Outcome(JobState.Failed, JobEventKinds.Failed,
                        $"step {step} failed {times} times in a row, each time on a new plan: {failure.Message}; the job stops instead of re-planning forever");
                if (!await Replan(new ReplanChange(ReplanCause.Failure, failure.Message))) return null;
                continue;
            }
            if (Checkpoints.Due(step)) await Checkpoints.Begin(_units, plan, step);
        }
        var final = Record.Plan!;
        var digest = await UnitCalls.SameState(final, _units, "at the end");
        Record.FinalParameterDigest = digest;
        if (spec.Output.Directory is { } directory)
        {
            // Under ZeRO 3 no replica holds the whole model: they all gather it, and replica 0 writes it.
            // Saving gathers what replicas hold apart: every replica's part under ZeRO 3, the experts of replica 0's expert group.
            var savers = final.Zero >= 3 && final.Dp > 1 ? _units : _units.Take(final.Ep).ToArray();
            await UnitCalls.OnAll(final.ReplicaDevices(), savers.Select(u => u.SaveModel(directory)).ToArray(), "saving the model");
            Journal.Add(JobEventKinds.Saved, $"the trained model is in {directory}");
        }
        return new Outcome(JobState.Completed, JobEventKinds.Completed, $"{spec.Steps} steps, final loss {StepLog.Last(Record)!.Loss:F4}, finalParameterDigest {digest}");
    }

    public Task<JobStatus?> RequestCheckpoint()
    {
        if (!job.RecordExists) return Task.FromResult<JobStatus?>(null);
        if (!Record.State.IsTerminal() && Checkpoints.Request())
            Journal.Add(JobEventKinds.CheckpointRequested, "a checkpoint is taken at the next step boundary");
        return Task.FromResult<JobStatus?>(Journal.Status());
    }

    /// <summary>
    /// The engine error (not a collective's, which fails because a peer did) that has now failed <paramref name="what"/> at
    /// <paramref name="step"/> on two silos, or as often as a job may fail in a row: it follows the job, so the job fails
    /// instead of moving to another silo. Null while a re-plan may still help.
    /// </summary>
    private string? FollowsTheJob(string what, long step, ParallelPlan plan, IReadOnlyList<Task> calls)
    {
        foreach (var (call, r) in calls.Select((call, r) => (call, r)).Where(c => c.call.IsFaulted))
            if (call.Exception!.GetBaseException() is UnitFailedException { Message: var error } failure && !UnitFailedException.IsCollective(failure)
                && _failures.Record(step, error, plan.DeviceOf(r).Silo.ToString()) is var (silos, times))
                return silos.Count >= 2
                    ? $"{what} failed the same way on {silos.Count} silos ({string.Join(", ", silos)}): {error}; the error follows the job, so it is not moved to another silo"
                    : $"{what} failed the same way {times} times on {silos.Single()}: {error}; the error follows the job, so it is not tried again";
        return null;
    }

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

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: this coordinator is stale and stops: {Reason}")]
    private static partial void LogStale(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: persisting its record failed: {Reason}")]
    private static partial void LogPersistFailed(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: its wake-up reminder could not be set or removed: {Reason}")]
    private static partial void LogReminderFailed(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "job {JobId}: releasing devices failed: {Reason}")]
    private static partial void LogReleaseFailed(ILogger logger, string jobId, string reason);

    private sealed record Outcome(JobState State, string Kind, string Message);

}
