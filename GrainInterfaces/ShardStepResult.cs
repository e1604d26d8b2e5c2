namespace Elastic.GrainInterfaces;

/// <summary>What one step did on one shard group (every replica reports the same values after the all-reduce), and how long it took there.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.ShardStepResult")]
public sealed record ShardStepResult(
    [property: Id(0)] long Step,
    [property: Id(1)] double Loss,
    [property: Id(2)] double LearningRate,
    [property: Id(3)] double GradNorm,
    [property: Id(4)] double? HeldOutLoss,
    [property: Id(5)] double Seconds = 0);
