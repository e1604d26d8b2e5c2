namespace Elastic.GrainInterfaces;

/// <summary>
/// Where a job stands in the scheduler's order: its tenant (whose device quota it counts against), its priority (higher is
/// served first) and when it was submitted (earlier first among equal priorities).
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.JobStanding")]
public sealed record JobStanding(
    [property: Id(0)] string Tenant,
    [property: Id(1)] int Priority,
    [property: Id(2)] DateTimeOffset SubmittedAt);
