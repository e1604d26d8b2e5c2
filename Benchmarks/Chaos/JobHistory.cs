using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Benchmarks.Chaos;

/// <summary>One look at a job, on the run's clock: its state, generation and committed step count.</summary>
public sealed record Observation(TimeSpan At, JobState State, long Generation, long Committed, long LastEvent);

/// <summary>
/// Everything a chaos run saw of one job, in the order it saw it: each status, each committed step with its loss (a step
/// seen again after a rewind is kept twice), each event, the run's own resumes, and the end (status and report).
/// </summary>
public sealed class JobHistory(string jobId, TrainingSpec spec)
{
    public string JobId { get; } = jobId;
    public TrainingSpec Spec { get; } = spec;
    public List<Observation> Observations { get; } = [];
    public List<(TimeSpan At, long Step, double Loss)> Steps { get; } = [];
    public SortedDictionary<long, JobEvent> Events { get; } = [];
    /// <summary>When the run itself cancelled and resumed the job (after damaging its newest checkpoint).</summary>
    public List<TimeSpan> Resumes { get; } = [];
    /// <summary>The endpoints of the silos each generation's plan ran on, as seen.</summary>
    public Dictionary<long, IReadOnlySet<string>> PlanSilos { get; } = [];
    public JobStatus? Final { get; set; }
    public RunReport? Report { get; set; }

    public void Record(TimeSpan at, JobProgress progress)
    {
        lock (this)
        {
            foreach (var e in progress.Events) Events[e.Index] = e;
            foreach (var step in progress.Steps) Steps.Add((at, step.Step, step.Loss));
            var status = progress.Status;
            if (status.Plan is { } plan) PlanSilos.TryAdd(plan.Generation, plan.Devices.Select(d => d.Silo.Endpoint.ToString()).ToHashSet());
            Observations.Add(new Observation(at, status.State, status.Plan?.Generation ?? 0, status.CommittedStep, Events.Count == 0 ? 0 : Events.Keys.Max()));
        }
    }
}
