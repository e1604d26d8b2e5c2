using Elastic.Jobs.Reports;

namespace Elastic.GrainInterfaces;

/// <summary>What a job did after a watcher's last look: its status, the steps and held-out losses committed since, and new events.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.JobProgress")]
public sealed record JobProgress(
    [property: Id(0)] JobStatus Status,
    [property: Id(1)] IReadOnlyList<StepRecord> Steps,
    [property: Id(2)] IReadOnlyList<EvalRecord> HeldOut,
    [property: Id(3)] IReadOnlyList<JobEvent> Events);
