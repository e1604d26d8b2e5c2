namespace Elastic.GrainInterfaces;

/// <summary>
/// A short-lived data-plane group that copies a replica's state to new ranks: rank 0 (a surviving replica of this or
/// the previous generation) sends, every other rank receives. Named by job, generation and purpose, so it never
/// meets a training group. Endpoints: each member's tensor-parallel group in order (member-major, tp per member);
/// tensor rank t of every member forms its own transfer, of that rank's shards.
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.StateTransferGroup")]
public sealed record StateTransferGroup(
    [property: Id(0)] string Name,
    [property: Id(1)] IReadOnlyList<string> Endpoints,
    [property: Id(2)] TimeSpan Timeout,
    [property: Id(3)] int TensorParallel = 1)
{
    /// <summary>The transfer of tensor rank <paramref name="tensorRank"/>: its own name and one endpoint per member.</summary>
    public StateTransferGroup ForTensorRank(int tensorRank) => TensorParallel == 1 ? this
        : new StateTransferGroup($"{Name}/t{tensorRank}", Endpoints.Where((_, i) => i % TensorParallel == tensorRank).ToList(), Timeout);
}
