namespace Elastic.GrainInterfaces;

/// <summary>One pipeline stage of one replica on one silo's devices (key: job/generation/replica/stage). Tensor work runs on the device's thread.</summary>
[Alias("Elastic.IShardGroupGrain")]
public interface IShardGroupGrain : IGrainWithStringKey, ITrainingUnit;
