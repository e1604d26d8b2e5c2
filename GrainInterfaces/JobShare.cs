namespace Elastic.GrainInterfaces;

/// <summary>
/// A job's share of the cluster as the scheduler decided it: how many devices it holds, the most it may hold now (below
/// <see cref="Held"/>: it yields devices to a higher-priority job at its next step boundary), its place in the queue while
/// it waits (1 is next), and why, in words.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.JobShare")]
public sealed record JobShare(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobStanding Standing,
    [property: Id(2)] int Held,
    [property: Id(3)] int Cap,
    [property: Id(4)] int? Position,
    [property: Id(5)] string? Note);
