namespace Elastic.GrainInterfaces;

/// <summary>
/// A short-lived data-plane group that copies a replica's state to new ranks: rank 0 (a surviving replica of this or
/// the previous generation) sends, every other rank receives. Named by job, generation and purpose, so it never
/// meets a training group.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.StateTransferGroup")]
public sealed record StateTransferGroup(
    [property: Id(0)] string Name,
    [property: Id(1)] IReadOnlyList<string> Endpoints,
    [property: Id(2)] TimeSpan Timeout);
