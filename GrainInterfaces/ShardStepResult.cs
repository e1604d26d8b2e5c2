using Elastic.Jobs.Reports;

namespace Elastic.GrainInterfaces;

/// <summary>
/// What one step did on one shard group (every replica reports the same values after the all-reduce), how long it took
/// there, what its device holds (a replica reports its heaviest unit's), and with MoE layers what the experts did.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.ShardStepResult")]
public sealed record ShardStepResult(
    [property: Id(0)] long Step,
    [property: Id(1)] double Loss,
    [property: Id(2)] double LearningRate,
    [property: Id(3)] double GradNorm,
    [property: Id(4)] double? HeldOutLoss,
    [property: Id(5)] double Seconds = 0,
    [property: Id(6)] DeviceMemory? Memory = null,
    [property: Id(7)] ExpertLoad? Experts = null);
