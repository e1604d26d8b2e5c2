using Elastic.Jobs;
using Elastic.Parallelism;

namespace Elastic.GrainInterfaces;

/// <summary>
/// What a shard group (or its replica) of one generation is to run: the spec, its place in the plan, and its peers.
/// AdoptState: take over the state that the previous generation's unit on the same device handed over. JoinTimeout:
/// how long to wait for the other ranks to join the data-parallel group (a peer that failed to prepare is noticed then).
/// PeerSecret: the generation's data-plane secret (32 bytes, kept in the coordinator's memory only): ranks link only with
/// peers that prove they hold it; a unit refuses to join without one. DeviceGroupIds: the NCCL id of each group whose ranks are
/// on GPUs of more than one process, by group name, drawn on the silo of its first rank (null: none; the groups send frames).
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.ShardAssignment")]
public sealed record ShardAssignment(
    [property: Id(0)] string JobId,
    [property: Id(1)] TrainingSpec Spec,
    [property: Id(2)] ParallelPlan Plan,
    [property: Id(3)] int Replica,
    [property: Id(4)] int Stage,
    [property: Id(5)] TimeSpan CollectiveTimeout,
    [property: Id(6)] bool AdoptState = false,
    [property: Id(7)] TimeSpan? JoinTimeout = null,
    [property: Id(8)] int TensorRank = 0,
    [property: Id(9)] byte[]? PeerSecret = null,
    [property: Id(10)] IReadOnlyDictionary<string, byte[]>? DeviceGroupIds = null)
{
    /// <summary>This unit's rank in the plan's grid.</summary>
    public int Rank => Plan.ToGrid().RankOf(new GridCoordinates(Replica, Stage, TensorRank));

    public DeviceSlot Device => Plan.Devices[Rank];

    /// <summary>What the unit's process groups are named under: every group of one generation of one job shares it.</summary>
    public string GroupPrefix => $"{JobId}/g{Plan.Generation}";

    /// <summary>The data-plane endpoint of every rank of the plan, by rank.</summary>
    public IReadOnlyList<string> Endpoints => Plan.Devices.Select(d => d.DataPlane).ToArray();
}
