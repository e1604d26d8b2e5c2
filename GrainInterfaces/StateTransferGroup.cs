namespace Elastic.GrainInterfaces;

/// <summary>
/// A short-lived data-plane group that moves a job's state to the units of a new plan: one rank per shard unit (a
/// device). Ranks [0, <see cref="Sources"/>) hold the state (kept units of the new plan, or units of the old one that
/// staged theirs in host memory), the rest receive their regions of it. Named by job, generation and purpose, so it
/// never meets a training group. Endpoints: one per rank, each unit's tensor ranks in order. Secret: its generation's
/// data-plane secret, as in <see cref="ShardAssignment.PeerSecret"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.StateTransferGroup")]
public sealed record StateTransferGroup(
    [property: Id(0)] string Name,
    [property: Id(1)] IReadOnlyList<string> Endpoints,
    [property: Id(2)] TimeSpan Timeout,
    [property: Id(3)] int Sources = 1,
    [property: Id(4)] byte[]? Secret = null);
