namespace Elastic.GrainInterfaces;

/// <summary>How a job's units and the parts they write are named: shared by the coordinator and the units themselves.</summary>
public static class UnitKeys
{
    /// <summary>The replica grain of <paramref name="replica"/> in <paramref name="plan"/>: its generation and rank, on the silo of its devices.</summary>
    public static string Replica(string jobId, ParallelPlan plan, int replica) =>
        DeviceKey.Of($"{jobId}/g{plan.Generation}/r{replica}", plan.DeviceOf(replica).Silo);

    /// <summary>The unit that stages the state <paramref name="holder"/> parked on the devices of <paramref name="plan"/>'s one replica, in its generation.</summary>
    public static string ParkedState(string jobId, ParallelPlan plan, int holder) =>
        DeviceKey.Of($"{jobId}/g{plan.Generation}/parked{holder}", plan.DeviceOf(0).Silo);

    /// <summary>The shard group of <paramref name="stage"/> and <paramref name="tensorRank"/> of a replica, on the silo of its own device (a stage may live on another silo than its replica grain).</summary>
    public static string ShardGroup(string replicaKey, SiloAddress deviceSilo, int stage, int tensorRank) =>
        DeviceKey.Of($"{replicaKey}/s{stage}/t{tensorRank}", deviceSilo);

    /// <summary>The checkpoint part a unit writes: its data-parallel writer index, stage and tensor rank (every region is in exactly one part).</summary>
    public static string PartName(int writer, int stage, int tensorRank) => $"r{writer}s{stage}t{tensorRank}";
}
