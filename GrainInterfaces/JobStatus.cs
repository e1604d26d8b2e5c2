using Elastic.Jobs.Reports;

namespace Elastic.GrainInterfaces;

/// <summary>
/// A job at a glance, as its record in the store holds it: CommittedStep steps are recorded and never taken back (unless an
/// event declares a rewind); TrainedStep counts the steps its replicas agreed on, which runs ahead while the job store is
/// slow or down. Degraded: its last checkpoint failed (training goes on; the next one retries). Replans: layout
/// changes while it ran; of their causes, Preemptions (eviction notices) are counted apart from Failures (lost silos).
/// Stages: with pp > 1, which layers each pipeline stage of the plan holds. Memory: what the plan's busiest device holds, by kind.
/// Experts: with MoE layers, what they did in the last committed step. Mfu: model FLOPs utilization over the job's training
/// time, where the devices' peak is known (H100, H200), else null.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.JobStatus")]
public sealed record JobStatus(
    [property: Id(0)] string JobId,
    [property: Id(1)] string Name,
    [property: Id(2)] JobState State,
    [property: Id(3)] ParallelPlan? Plan,
    [property: Id(4)] long CommittedStep,
    [property: Id(5)] int TotalSteps,
    [property: Id(6)] double? LastLoss,
    [property: Id(7)] double TokensPerSecond,
    [property: Id(8)] string? Error,
    [property: Id(9)] DateTimeOffset SubmittedAt,
    [property: Id(10)] string? FinalParameterDigest,
    [property: Id(11)] long? LastCheckpointStep,
    [property: Id(12)] bool Degraded,
    [property: Id(13)] int Replans = 0,
    [property: Id(14)] int Preemptions = 0,
    [property: Id(15)] int Failures = 0,
    [property: Id(16)] string Device = "cpu",
    [property: Id(17)] string? Stages = null,
    [property: Id(18)] DeviceMemory? Memory = null,
    [property: Id(19)] ExpertLoad? Experts = null,
    [property: Id(20)] string Tenant = Tenants.Default,
    [property: Id(21)] double? Mfu = null,
    [property: Id(22)] double? PredictedStepSeconds = null,
    [property: Id(23)] double? MeasuredStepSeconds = null,
    [property: Id(24)] long TrainedStep = 0);
