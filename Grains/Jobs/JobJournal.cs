using System.Globalization;
using Elastic.GrainInterfaces;
using Elastic.Grains.Telemetry;
using Elastic.Jobs;
using Elastic.Planning;
using Elastic.Jobs.Reports;
using Microsoft.Extensions.Logging;

namespace Elastic.Grains.Jobs;

/// <summary>
/// What a job records and shows: its events, its committed steps (through its <see cref="StepLog"/>), held-out losses and
/// state transitions, and the views made of them (status, progress, the run report). It owns the record's contents; the
/// record's persistence is <see cref="JobRecordWriter"/>'s, which <paramref name="recordChanged"/> asks for a write.
/// The views show the record as the store last took it, never more: a coordinator lost with its silo takes back whatever
/// it had not written, and a step, an event or an end that a watcher saw must never be taken back (a later coordinator
/// would reuse the event's index and train the step again undeclared). Only <see cref="JobStatus.TrainedStep"/> runs ahead.
/// Watchers wait on it for the next recorded change.
/// </summary>
public sealed partial class JobJournal(IPersistentState<JobRecord> job, StepLog history, string jobId, TimeProvider time, ILogger logger, Action recordChanged)
{
    /// <summary>The most steps one progress answer carries: a watcher far behind a long job gets its history in pages.</summary>
    public const int ProgressPage = 5000;

    private TaskCompletionSource _recordedChange = NewSignal();

    /// <summary>The views of the record as the store last took it (at first: as it was read).</summary>
    private Recorded _recorded = new(Live(job.State, jobId), job.State.Events.Count);

    private sealed record Recorded(JobStatus Status, int Events);

    public JobRecord Record => job.State;

    /// <summary>Committed steps: 1..Committed are in the step history (the store may not have taken the newest yet).</summary>
    public long Committed => StepLog.Count(Record);

    public void Add(string kind, string message, ReplanFields? replan = null)
    {
        Record.Events.Add(new JobEvent(Record.Events.Count + 1, time.GetUtcNow(), kind, message, replan));
        recordChanged();
    }

    /// <summary>Snapshots the views as they are now, for a write about to start; the returned action shows them once it landed.</summary>
    public Action Recording()
    {
        var snapshot = new Recorded(Live(Record, jobId), Record.Events.Count);
        return () =>
        {
            _recorded = snapshot;
            var changed = _recordedChange;
            _recordedChange = NewSignal();
            changed.TrySetResult();
        };
    }

    /// <summary>Commits a step once its replicas reported it; replicas that disagree on the loss mean the layout broke its promise.</summary>
    public void Commit(long step, IReadOnlyList<ShardStepResult> results, double seconds)
    {
        var first = results[0];
        if (results.Any(r => r.Loss != first.Loss))
            throw new JobFailure($"step {step}: replicas disagree on the loss ({string.Join(", ", results.Select(r => r.Loss))})");
        var tokens = (double)Record.Spec.Batch.Global * Record.Spec.Model.Context;
        history.Append(Record, new StepRecord(step, first.Loss, first.LearningRate, first.GradNorm, tokens / seconds, seconds * 1000, first.Experts));
        ElasticTelemetry.StepDuration.Record(seconds, ElasticTelemetry.Job(jobId));
        ElasticTelemetry.Steps.Add(1, ElasticTelemetry.Job(jobId));
        ElasticTelemetry.Tokens.Add((long)tokens, ElasticTelemetry.Job(jobId));
        if (Utilization(Record, tokens / seconds) is { } mfu) ElasticTelemetry.Mfu.Record(mfu, ElasticTelemetry.Job(jobId));
        Record.Experts = first.Experts ?? Record.Experts;
        WatchBalance(step, first.Experts);
        Record.TrainingSeconds += seconds;
        Record.Memory = results.Select(r => r.Memory).Aggregate(DeviceMemory.Heavier) ?? Record.Memory;
        if (results.Select(r => r.HeldOutLoss).FirstOrDefault(l => l is not null) is { } heldOut)
            Record.HeldOut.Add(new EvalRecord(step, heldOut));
        recordChanged();
    }

    /// <summary>
    /// Records an event when a MoE layer's busiest expert has stayed above model.moe.imbalanceAlert times the mean for
    /// <see cref="MoeSpec.ImbalanceSteps"/> committed steps in a row, and another when it comes back under.
    /// </summary>
    private void WatchBalance(long step, ExpertLoad? experts)
    {
        if (experts is null || Record.Spec.Model.Moe is not { } moe) return;
        var worst = experts.Layers.MaxBy(l => l.MaxOverMean)!;
        if (worst.MaxOverMean <= moe.ImbalanceAlert)
        {
            if (_imbalancedSteps >= MoeSpec.ImbalanceSteps)
                Add(JobEventKinds.ExpertsBalanced, string.Create(CultureInfo.InvariantCulture, $"step {step}: the busiest expert is back under {moe.ImbalanceAlert:0.##}x the mean load ({experts})"));
            _imbalancedSteps = 0;
            return;
        }
        if (++_imbalancedSteps == MoeSpec.ImbalanceSteps)
            Add(JobEventKinds.ExpertsImbalanced, string.Create(CultureInfo.InvariantCulture,
                $"step {step}: layer {worst.Layer}'s busiest expert has had over {moe.ImbalanceAlert:0.##}x the mean load for {MoeSpec.ImbalanceSteps} steps (now {worst.MaxOverMean:F2}x; tokens per expert {string.Join(" ", worst.Tokens)}, dropped {worst.Dropped}): raise model.moe.auxLoss or set a capacityFactor"));
    }

    private int _imbalancedSteps;

    /// <summary>Forgets the committed steps after <paramref name="step"/> (they will be trained again); returns how many.</summary>
    public async Task<long> RewindTo(long step)
    {
        Record.HeldOut.RemoveAll(e => e.Step > step);
        return await history.RewindAsync(Record, step);
    }

    public void Transition(JobState state)
    {
        LogTransition(logger, jobId, Record.State, state);
        Record.State = state;
        recordChanged();
    }

    public void End(JobState state, string kind, string message)
    {
        Transition(state);
        Record.EndedAt = time.GetUtcNow();
        if (state == JobState.Failed) Record.Error = message;
        Add(kind, message);
    }

    /// <summary>The job as the store last took it, with the steps trained since.</summary>
    public JobStatus Status() => Shown(_recorded);

    private JobStatus Shown(Recorded recorded) => recorded.Status with { TrainedStep = Committed };

    /// <summary>The job as this coordinator knows it, recorded or not.</summary>
    private static JobStatus Live(JobRecord record, string jobId)
    {
        var committed = StepLog.Count(record);
        var tokensPerSecond = TokensPerSecond(record);
        return new(jobId, record.Spec.Name, record.State, record.Plan, committed, record.Spec.Steps,
            StepLog.Last(record)?.Loss, tokensPerSecond, record.Error, record.SubmittedAt, record.FinalParameterDigest,
            record.LastCheckpointStep, record.Degraded, record.Replans, record.Preemptions, record.Failures, record.Device, Stages(record, record.Plan), record.Memory,
            record.Experts, record.Tenant, Utilization(record, tokensPerSecond), record.PredictedStepSeconds,
            StepLog.Last(record) is { } last ? last.Milliseconds / 1e3 : null, committed);
    }

    /// <summary>The model FLOPs utilization of <paramref name="tokensPerSecond"/> on the current plan's devices; null where their peak is not known.</summary>
    private static double? Utilization(JobRecord record, double tokensPerSecond) =>
        record.Plan is { } plan ? ModelFlops.Utilization(record.Spec, record.Parameters, tokensPerSecond, plan.DeviceCount, record.Device) : null;

    /// <summary>With pp > 1, what each stage of <paramref name="plan"/> holds; null otherwise.</summary>
    public string? Stages(ParallelPlan? plan) => Stages(Record, plan);

    private static string? Stages(JobRecord record, ParallelPlan? plan) =>
        plan is { Pp: > 1 } ? PipelineSplit.Describe(record.Spec.Model, plan.Pp, plan.VirtualStages) : null;

    /// <summary>Recorded steps after <paramref name="afterStep"/> and events after <paramref name="afterEvent"/>, waiting up to <paramref name="maxWait"/> for some.</summary>
    public async Task<JobProgress> Progress(long afterStep, long afterEvent, TimeSpan maxWait)
    {
        var recorded = _recorded;
        if (!recorded.Status.State.IsTerminal() && recorded.Status.CommittedStep <= afterStep && recorded.Events <= afterEvent)
        {
            await Task.WhenAny(_recordedChange.Task, Task.Delay(maxWait, time));
            recorded = _recorded;
        }
        var last = recorded.Status.CommittedStep;
        return new JobProgress(Shown(recorded),
            (await history.ReadAsync(Record, afterStep, max: ProgressPage)).Where(s => s.Step <= last).ToList(),
            Record.HeldOut.Where(e => e.Step > afterStep && e.Step <= last).ToList(),
            Record.Events.Take(recorded.Events).Where(e => e.Index > afterEvent).ToList());
    }

    /// <summary>The run as recorded: its steps, and whether it completed, as far as the store holds them.</summary>
    public async Task<RunReport> Report()
    {
        var r = Record;
        var recorded = _recorded.Status;
        var started = r.StartedAt ?? r.SubmittedAt;
        return new RunReport
        {
            Spec = r.Spec,
            StartedAt = started,
            Device = r.Device,
            ThreadsPerDevice = r.Spec.Runtime.ThreadsPerDevice,
            Parameters = r.Parameters,
            Steps = (await history.ReadAsync(r, 0)).Where(s => s.Step <= recorded.CommittedStep).ToList(),
            HeldOut = r.HeldOut.Where(e => e.Step <= recorded.CommittedStep).ToList(),
            Completed = recorded.State == JobState.Completed,
            WallSeconds = ((r.EndedAt ?? time.GetUtcNow()) - started).TotalSeconds,
            TokensPerSecond = TokensPerSecond(r),
            FinalParameterDigest = r.FinalParameterDigest ?? "",
            Memory = r.Memory,
        };
    }

    private static double TokensPerSecond(JobRecord record) => record.TrainingSeconds > 0
        ? (double)record.Spec.Batch.Global * record.Spec.Model.Context * StepLog.Count(record) / record.TrainingSeconds
        : 0;

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    [LoggerMessage(Level = LogLevel.Information, Message = "job {JobId}: {From} -> {To}")]
    private static partial void LogTransition(ILogger logger, string jobId, JobState from, JobState to);
}
