using Elastic.Jobs;

namespace Elastic.GrainInterfaces;

/// <summary>
/// What a shard group (or its replica) of one generation is to run: the spec, its place in the plan, and its peers.
/// AdoptState: take over the state that the previous generation's unit on the same device handed over. JoinTimeout:
/// how long to wait for the other ranks to join the data-parallel group (a peer that failed to prepare is noticed then).
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
    [property: Id(7)] TimeSpan? JoinTimeout = null)
{
    public DeviceSlot Device => Plan.DeviceOf(Replica, Stage);

    /// <summary>The data-parallel group of this stage: one rank per replica, named by job and generation.</summary>
    public string DataParallelGroup => $"{JobId}/g{Plan.Generation}/s{Stage}/dp";

    public IReadOnlyList<string> DataParallelEndpoints => Enumerable.Range(0, Plan.Dp).Select(r => Plan.DeviceOf(r, Stage).DataPlane).ToArray();
}
