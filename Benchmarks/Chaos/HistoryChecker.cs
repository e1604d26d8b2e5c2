using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Benchmarks.Chaos;

/// <summary>A broken invariant: which, for which job, at which step (if one), and what was seen.</summary>
public sealed record Violation(string Invariant, string JobId, long? Step, string Detail)
{
    public override string ToString() => $"{Invariant}: job {JobId}{(Step is { } s ? $", step {s}" : "")}: {Detail}";
}

/// <summary>The fault-free run of a spec: its loss at every step and its final parameter digest (one device, the engine alone).</summary>
public sealed record Reference(IReadOnlyList<double> Losses, string Digest);

/// <summary>What a chaos run's histories show, besides the violations.</summary>
/// <param name="StepsLost">Committed steps lost while some silo that held the job's state was not taken down: each one a violation.</param>
/// <param name="StepsLostWithEveryReplica">Committed steps lost because faults took down every silo that held the job's state (only a checkpoint was left).</param>
public sealed record ChaosFigures(int Jobs, long StepsCommitted, int Replans, long StepsLost, long StepsLostWithEveryReplica, long StepsRetrainedAfterResume,
    IReadOnlyList<double> RecoverySeconds, int JobsFailed);

/// <summary>
/// Checks each job's history against its fault-free reference, like a Jepsen checker over a whole history: generations only
/// increase; the committed step count only falls right after an event that declares the rewind; no step is ever seen with
/// two different losses, and every loss seen equals the fault-free run's at that step, bit for bit; the report holds steps
/// 1..N with those losses; the job completed with the fault-free digest; no committed step was lost to a fault while a
/// replica could have kept it. A job's state lives on the devices of its plan and in its checkpoints, so a loss is allowed
/// only when kills or pauses took down every silo of the last plan that held the state (it is counted apart). Pure: the histories in, the
/// violations and the figures out.
/// </summary>
public static class HistoryChecker
{
    public static (IReadOnlyList<Violation> Violations, ChaosFigures Figures) Check(IReadOnlyList<JobHistory> jobs, Func<TrainingSpec, Reference> reference,
        IReadOnlyList<AppliedFault> faults)
    {
        var violations = new List<Violation>();
        var recovery = new List<double>();
        long lost = 0, lostWithEveryReplica = 0, retrained = 0;
        foreach (var job in jobs)
        {
            var expected = reference(job.Spec);
            CheckGenerations(job, violations);
            CheckStepCounts(job, violations);
            CheckLosses(job, expected, violations);
            CheckEnd(job, expected, violations);
            foreach (var loss in job.Events.Values.Where(e => e.Replan?.StepsLost > 0))
            {
                if (EveryReplicaTakenDown(job, loss, faults))
                {
                    lostWithEveryReplica += loss.Replan!.StepsLost;
                    continue;
                }
                lost += loss.Replan!.StepsLost;
                violations.Add(new Violation("no committed step is lost", job.JobId, null, $"{loss.Replan.StepsLost} step(s) lost: {loss.Message}"));
            }
            retrained += RetrainedAfterResumes(job);
            recovery.AddRange(RecoveryTimes(job, faults));
        }
        var figures = new ChaosFigures(jobs.Count, jobs.Sum(j => j.Report?.Steps.Count ?? 0), jobs.Sum(j => j.Final?.Replans ?? 0), lost, lostWithEveryReplica, retrained, recovery,
            jobs.Count(j => j.Final?.State != JobState.Completed));
        return (violations, figures);
    }

    /// <summary>
    /// Whether kills or pauses took down every silo of the plan that held the job's state before <paramref name="loss"/> was
    /// declared (<see cref="HoldingGeneration"/>), between the last look at an older generation and the first look that showed
    /// the declaration.
    /// </summary>
    private static bool EveryReplicaTakenDown(JobHistory job, JobEvent loss, IReadOnlyList<AppliedFault> faults)
    {
        var looks = job.Observations.TakeWhile(o => o.LastEvent < loss.Index).ToList();
        if (looks.Count == 0) return false;
        var holding = HoldingGeneration(looks);
        if (!job.PlanSilos.TryGetValue(holding, out var silos) || silos.Count == 0) return false;
        var from = job.Observations.LastOrDefault(o => o.Generation < holding)?.At ?? TimeSpan.Zero;
        var to = job.Observations.FirstOrDefault(o => o.LastEvent >= loss.Index)?.At ?? TimeSpan.MaxValue;
        var down = faults.Where(f => f.Silo is not null && f.At >= from && f.At <= to).Select(f => f.Silo!).ToHashSet();
        return silos.All(down.Contains);

        // The last generation known to have held the state: one that committed a step between two looks at it, or whose
        // `replanned` event was recorded. A generation whose units were still being prepared when its coordinator died never
        // held it (found by the chaos test: a grow's new silo was counted a holder though the state was only on the old one).
        long HoldingGeneration(List<Observation> looks)
        {
            var holding = 0L;
            foreach (var (previous, look) in looks.Prepend(null).Zip(looks))
            {
                var stepped = look.Committed > (previous?.Committed ?? 0) && (previous is null || previous.Generation == look.Generation);
                var replanned = job.Events.Values.Any(e => e.Index > (previous?.LastEvent ?? 0) && e.Index <= look.LastEvent
                    && e.Kind == JobEventKinds.Replanned && e.Replan?.To is { Length: > 0 });
                if (stepped || replanned) holding = look.Generation;
            }
            return holding == 0 ? looks[^1].Generation : holding;
        }
    }

    private static void CheckGenerations(JobHistory job, List<Violation> violations)
    {
        foreach (var (before, after) in job.Observations.Zip(job.Observations.Skip(1)))
            if (after.Generation < before.Generation)
                violations.Add(new Violation("generations strictly increase", job.JobId, after.Committed,
                    $"generation {after.Generation} seen at {after.At.TotalSeconds:F1} s after generation {before.Generation}"));
    }

    /// <summary>The committed count falls only when an event between the two looks declares that steps will be trained again.</summary>
    private static void CheckStepCounts(JobHistory job, List<Violation> violations)
    {
        foreach (var (before, after) in job.Observations.Zip(job.Observations.Skip(1)))
        {
            if (after.Committed >= before.Committed) continue;
            var declared = job.Events.Values.Any(e => e.Index > before.LastEvent && e.Index <= after.LastEvent && DeclaresRewind(e));
            if (!declared)
                violations.Add(new Violation("committed steps are never rewritten", job.JobId, after.Committed,
                    $"the committed count fell from {before.Committed} to {after.Committed} at {after.At.TotalSeconds:F1} s with no event declaring a rewind"));
        }
    }

    private static bool DeclaresRewind(JobEvent e) =>
        e.Kind is JobEventKinds.Resumed or JobEventKinds.CheckpointUnreadable || e.Replan?.StepsLost > 0;

    private static void CheckLosses(JobHistory job, Reference expected, List<Violation> violations)
    {
        foreach (var group in job.Steps.GroupBy(s => s.Step))
        {
            var losses = group.Select(s => s.Loss).Distinct().ToList();
            if (losses.Count > 1)
                violations.Add(new Violation("committed steps are never rewritten", job.JobId, group.Key, $"seen with losses {string.Join(", ", losses.Select(l => l.ToString("R")))}"));
            if (group.Key < 1 || group.Key > expected.Losses.Count)
                violations.Add(new Violation("committed steps increase by one", job.JobId, group.Key, $"a step outside 1..{expected.Losses.Count}"));
            else if (losses.Any(l => l != expected.Losses[(int)group.Key - 1]))
                violations.Add(new Violation("every loss equals the fault-free run's", job.JobId, group.Key,
                    $"loss {losses[0]:R}, fault-free {expected.Losses[(int)group.Key - 1]:R}"));
        }
    }

    private static void CheckEnd(JobHistory job, Reference expected, List<Violation> violations)
    {
        if (job.Final?.State != JobState.Completed)
        {
            violations.Add(new Violation("every job completes", job.JobId, job.Final?.CommittedStep, $"ended {job.Final?.State.ToString() ?? "never"}: {job.Final?.Error}"));
            return;
        }
        if (job.Final.FinalParameterDigest != expected.Digest)
            violations.Add(new Violation("the final digest equals the fault-free run's", job.JobId, job.Final.CommittedStep,
                $"{job.Final.FinalParameterDigest}, fault-free {expected.Digest}"));
        var steps = job.Report?.Steps.Select(s => s.Step).ToList() ?? [];
        if (!steps.SequenceEqual(Enumerable.Range(1, expected.Losses.Count).Select(i => (long)i)))
            violations.Add(new Violation("committed steps increase by one", job.JobId, null,
                $"the report holds {steps.Count} steps, {string.Join(",", steps.Take(3))}...{string.Join(",", steps.TakeLast(3))}; expected 1..{expected.Losses.Count}"));
        foreach (var step in job.Report?.Steps ?? [])
            if (step.Step >= 1 && step.Step <= expected.Losses.Count && step.Loss != expected.Losses[(int)step.Step - 1])
                violations.Add(new Violation("every loss equals the fault-free run's", job.JobId, step.Step, $"report loss {step.Loss:R}, fault-free {expected.Losses[(int)step.Step - 1]:R}"));
    }

    /// <summary>Steps trained twice because the run itself resumed the job from a checkpoint (not lost to a fault).</summary>
    private static long RetrainedAfterResumes(JobHistory job) =>
        job.Observations.Zip(job.Observations.Skip(1)).Where(p => p.Second.Committed < p.First.Committed).Sum(p => p.First.Committed - p.Second.Committed);

    /// <summary>Re-plans forced on a job by what it lost (not a join, a user's request or a fair-share shrink).</summary>
    private static readonly HashSet<string> Forced = ["leave", "preemption", "failure"];

    /// <summary>For each fault after which this job was forced to a new generation (within a minute): seconds from the fault to
    /// its next committed step in that generation. Growing back onto a silo that returned is not a recovery and is not counted.</summary>
    private static IEnumerable<double> RecoveryTimes(JobHistory job, IReadOnlyList<AppliedFault> faults)
    {
        foreach (var at in faults.Select(f => f.At))
        {
            var before = job.Observations.LastOrDefault(o => o.At <= at);
            if (before is null || before.State != JobState.Running) continue;
            var moved = job.Observations.FirstOrDefault(o => o.At > at && o.At <= at + TimeSpan.FromMinutes(1) && o.Generation > before.Generation);
            if (moved is null || !job.Events.Values.Any(e => e.Index > before.LastEvent && e.Index <= moved.LastEvent && e.Replan is { } r && Forced.Contains(r.Cause)))
                continue;
            var training = job.Observations.FirstOrDefault(o => o.At >= moved.At && o.Generation >= moved.Generation && o.Committed > moved.Committed);
            if (training is not null) yield return (training.At - at).TotalSeconds;
        }
    }
}
