namespace Elastic.GrainInterfaces;

/// <summary>
/// What the job grain asks of a replica and a replica of its shard groups: prepare for an assignment, run a step,
/// checkpoint, restore, report the digest, save the model, release the devices.
/// </summary>
[Alias("Elastic.ITrainingUnit")]
public interface ITrainingUnit : IAddressable
{
    [Alias("Prepare")] Task<long> Prepare(ShardAssignment assignment);

    [Alias("RunStep")] Task<ShardStepResult> RunStep(long step, bool evaluate);

    [Alias("Digest")] Task<string> Digest();

    /// <summary>Copies this replica's share of the state after <paramref name="step"/> to host memory (training waits only for this) and starts uploading it.</summary>
    [Alias("BeginCheckpoint")] Task BeginCheckpoint(long step);

    /// <summary>Waits until the upload begun at <paramref name="step"/> is stored (chunks and part entry).</summary>
    [Alias("FinishCheckpoint")] Task FinishCheckpoint(long step);

    /// <summary>Loads the state saved in the checkpoint whose manifest is <paramref name="manifest"/> (any layout wrote it).</summary>
    [Alias("Restore")] Task Restore(string manifest);

    /// <summary>Writes the trained model (spec and weights) into <paramref name="directory"/> on this silo's filesystem.</summary>
    [Alias("SaveModel")] Task SaveModel(string directory);

    [Alias("Release")] Task Release();
}
