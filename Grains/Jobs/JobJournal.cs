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
/// record's persistence is <see cref="JobRecordWriter"/>'s. Watchers wait on it for the next change.
/// </summary>
public sealed partial class JobJournal(IPersistentState<JobRecord> job, StepLog history, string jobId, TimeProvider time, ILogger logger)
{
    /// <summary>The most steps one progress answer carries: a watcher far behind a long job gets its history in pages.</summary>
    public const int ProgressPage = 5000;

    private TaskCompletionSource _changed = NewSignal();

    public JobRecord Record => job.State;

    /// <summary>Committed steps: 1..Committed are in the step history.</summary>
    public long Committed => StepLog.Count(Record);

    public void Add(string kind, string message, ReplanFields? replan = null)
    {
        Record.Events.Add(new JobEvent(Record.Events.Count + 1, time.GetUtcNow(), kind, message, replan));
        Signal();
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
        if (Utilization(tokens / seconds) is { } mfu) ElasticTelemetry.Mfu.Record(mfu, ElasticTelemetry.Job(jobId));
        Record.Experts = first.Experts ?? Record.Experts;
        WatchBalance(step, first.Experts);
        Record.TrainingSeconds += seconds;
        Record.Memory = results.Select(r => r.Memory).Aggregate(DeviceMemory.Heavier) ?? Record.Memory;
        if (results.Select(r => r.HeldOutLoss).FirstOrDefault(l => l is not null) is { } heldOut)
            Record.HeldOut.Add(new EvalRecord(step, heldOut));
        Signal();
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
        Signal();
    }

    public void End(JobState state, string kind, string message)
    {
        Transition(state);
        Record.EndedAt = time.GetUtcNow();
        if (state == JobState.Failed) Record.Error = message;
        Add(kind, message);
    }

    public JobStatus Status() => new(jobId, Record.Spec.Name, Record.State, Record.Plan, Committed, Record.Spec.Steps,
        StepLog.Last(Record)?.Loss, TokensPerSecond(), Record.Error, Record.SubmittedAt, Record.FinalParameterDigest,
        Record.LastCheckpointStep, Record.Degraded, Record.Replans, Record.Preemptions, Record.Failures, Record.Device, Stages(Record.Plan), Record.Memory, Record.Experts, Record.Tenant,
        Utilization(TokensPerSecond()), Record.PredictedStepSeconds, StepLog.Last(Record) is { } last ? last.Milliseconds / 1e3 : null);

    /// <summary>The model FLOPs utilization of <paramref name="tokensPerSecond"/> on the current plan's devices; null where their peak is not known.</summary>
    private double? Utilization(double tokensPerSecond) =>
        Record.Plan is { } plan ? ModelFlops.Utilization(Record.Spec, Record.Parameters, tokensPerSecond, plan.DeviceCount, Record.Device) : null;

    /// <summary>With pp > 1, what each stage of <paramref name="plan"/> holds; null otherwise.</summary>
    public string? Stages(ParallelPlan? plan) =>
        plan is { Pp: > 1 } ? PipelineSplit.Describe(Record.Spec.Model, plan.Pp, plan.VirtualStages) : null;

    /// <summary>Steps after <paramref name="afterStep"/> and events after <paramref name="afterEvent"/>, waiting up to <paramref name="maxWait"/> for some.</summary>
    public async Task<JobProgress> Progress(long afterStep, long afterEvent, TimeSpan maxWait)
    {
        if (!Record.State.IsTerminal() && Committed <= afterStep && Record.Events.Count <= afterEvent)
            await Task.WhenAny(_changed.Task, Task.Delay(maxWait, time));
        return new JobProgress(Status(),
            await history.ReadAsync(Record, afterStep, max: ProgressPage),
            Record.HeldOut.Where(e => e.Step > afterStep).ToList(),
            Record.Events.Where(e => e.Index > afterEvent).ToList());
    }

    public async Task<RunReport> Report()
    {
        var r = Record;
        var started = r.StartedAt ?? r.SubmittedAt;
        return new RunReport
        {
            Spec = r.Spec,
            StartedAt = started,
            Device = r.Device,
            ThreadsPerDevice = r.Spec.Runtime.ThreadsPerDevice,
            Parameters = r.Parameters,
            Steps = await history.ReadAsync(r, 0),
            HeldOut = r.HeldOut,
            Completed = r.State == JobState.Completed,
            WallSeconds = ((r.EndedAt ?? time.GetUtcNow()) - started).TotalSeconds,
            TokensPerSecond = TokensPerSecond(),
            FinalParameterDigest = r.FinalParameterDigest ?? "",
            Memory = r.Memory,
        };
    }

    private double TokensPerSecond() => Record.TrainingSeconds > 0
        ? (double)Record.Spec.Batch.Global * Record.Spec.Model.Context * Committed / Record.TrainingSeconds
        : 0;

    private void Signal()
    {
        var changed = _changed;
        _changed = NewSignal();
        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    [LoggerMessage(Level = LogLevel.Information, Message = "job {JobId}: {From} -> {To}")]
    private static partial void LogTransition(ILogger logger, string jobId, JobState from, JobState to);
}
