namespace Elastic.GrainInterfaces;

/// <summary>A data-parallel replica of one generation (key: job/generation/replica): runs its pipeline of shard groups.</summary>
[Alias("Elastic.IReplicaGrain")]
public interface IReplicaGrain : IGrainWithStringKey
{
    /// <summary>Prepares every stage of the replica; returns the model's parameter count.</summary>
    [Alias("Prepare")] Task<long> Prepare(ShardAssignment assignment);

    [Alias("RunStep")] Task<ShardStepResult> RunStep(long step, bool evaluate);

    [Alias("Digest")] Task<string> Digest();

    [Alias("Release")] Task Release();
}
