using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Jobs.Reports;

namespace Elastic.Grains.Jobs;

/// <summary>The persistent state of a job grain.</summary>
[GenerateSerializer, Alias("Elastic.JobRecord")]
public sealed class JobRecord
{
    [Id(0)] public TrainingSpec Spec { get; set; } = new();
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public DateTimeOffset SubmittedAt { get; set; }
    [Id(3)] public DateTimeOffset? StartedAt { get; set; }
    [Id(4)] public DateTimeOffset? EndedAt { get; set; }
    [Id(5)] public ParallelPlan? Plan { get; set; }
    [Id(6)] public int Generation { get; set; }
    /// <summary>The newest committed steps, those after <see cref="SealedSteps"/> (see <see cref="StepLog"/>): fewer than two segments.</summary>
    [Id(7)] public List<StepRecord> OpenSteps { get; set; } = [];
    [Id(8)] public List<EvalRecord> HeldOut { get; set; } = [];
    [Id(9)] public List<JobEvent> Events { get; set; } = [];
    [Id(10)] public string? Error { get; set; }
    [Id(11)] public long Parameters { get; set; }
    [Id(12)] public double TrainingSeconds { get; set; }
    [Id(13)] public string? FinalParameterDigest { get; set; }
    [Id(14)] public string Device { get; set; } = "cpu";
    [Id(15)] public long? LastCheckpointStep { get; set; }
    [Id(16)] public bool Degraded { get; set; }
    [Id(17)] public int Replans { get; set; }
    [Id(18)] public int Preemptions { get; set; }
    [Id(19)] public int Failures { get; set; }
    /// <summary>Set by a coordinator that stepped down because its silo was stopping (why, and at which step); cleared by the one that takes over.</summary>
    [Id(20)] public string? HandedOver { get; set; }
    /// <summary>Committed steps 1..SealedSteps, sealed in the job's step history blobs (<see cref="StepLog"/>).</summary>
    [Id(21)] public long SealedSteps { get; set; }

    /// <summary>The busiest device of the plan at the last committed step, by kind.</summary>
    [Id(22)] public DeviceMemory? Memory { get; set; }

    /// <summary>What the MoE layers did in the last committed step.</summary>
    [Id(24)] public ExpertLoad? Experts { get; set; }

    /// <summary>Who submitted the job: only that tenant (and admins) may see or change it.</summary>
    [Id(25)] public string Tenant { get; set; } = Tenants.Default;

    /// <summary>The step time the planner predicted for the current plan's layout on its devices.</summary>
    [Id(26)] public double? PredictedStepSeconds { get; set; }

    /// <summary>A user asked the job to stop at its next step boundary: kept in the record, so a coordinator that takes over stops it too.</summary>
    [Id(27)] public bool CancelRequested { get; set; }
}
