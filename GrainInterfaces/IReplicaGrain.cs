namespace Elastic.GrainInterfaces;

/// <summary>A data-parallel replica of one generation (key: job/generation/replica): runs its pipeline of shard groups.</summary>
[Alias("Elastic.IReplicaGrain")]
public interface IReplicaGrain : IGrainWithStringKey, ITrainingUnit;
