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

    /// <summary>
    /// Copies this unit's share (every <paramref name="writers"/>-th state tensor from <paramref name="writer"/>) of the state after
    /// <paramref name="step"/> to host memory (training waits only for this) and starts uploading it as part r<paramref name="writer"/>.
    /// </summary>
    [Alias("BeginCheckpoint")] Task BeginCheckpoint(long step, int writer, int writers);

    /// <summary>Waits until the upload begun at <paramref name="step"/> is stored (chunks and part entry).</summary>
    [Alias("FinishCheckpoint")] Task FinishCheckpoint(long step);

    /// <summary>Loads the state saved in the checkpoint whose manifest is <paramref name="manifest"/> (any layout wrote it).</summary>
    [Alias("Restore")] Task Restore(string manifest);

    /// <summary>Writes the trained model (spec and weights) into <paramref name="directory"/> on this silo's filesystem.</summary>
    [Alias("SaveModel")] Task SaveModel(string directory);

    /// <summary>Optimizer steps this unit's state has taken: after a failed step, tells a survivor that finished it from one that did not.</summary>
    [Alias("CompletedSteps")] Task<long> CompletedSteps();

    /// <summary>
    /// The results of the steps this unit ran after <paramref name="afterStep"/> in its generation: a coordinator that took over
    /// from a lost one commits the steps its survivors finished but the lost one had not recorded.
    /// </summary>
    [Alias("StepResults")] Task<IReadOnlyList<ShardStepResult>> StepResults(long afterStep);

    /// <summary>Leaves this unit's state on its device for the next generation's unit there (prepared with <see cref="ShardAssignment.AdoptState"/>), then releases.</summary>
    [Alias("Handover")] Task Handover();

    /// <summary>
    /// Copies this unit's state to host memory and gives its devices back, keeping the copy to serve a transfer of the next
    /// generation (which may put another unit, of another layout, on the same devices).
    /// </summary>
    [Alias("Stage")] Task Stage();

    /// <summary>
    /// Takes the state an earlier generation's unit left on this unit's devices (<see cref="Handover"/>) and stages it in host memory,
    /// as <see cref="Stage"/> does, without training on it: the next generation gets that state even when none of its replicas is
    /// on those devices (their silo is draining, or the layout changed). Returns the steps the state has taken.
    /// </summary>
    [Alias("StageParked")] Task<long> StageParked(ShardAssignment assignment);

    /// <summary>
    /// The steps of the state an earlier generation left on this unit's devices (<see cref="Handover"/>), or of the copy a unit
    /// of this key already staged, leaving it where it is; fails when nothing of the job lies there. A coordinator that takes
    /// over mid-re-plan learns from the silos what its predecessor parked, never from a record that may have gone stale.
    /// </summary>
    [Alias("ParkedSteps")] Task<long> ParkedSteps(ShardAssignment assignment);

    /// <summary>
    /// Joins <paramref name="group"/> from <paramref name="rank"/> on (a replica's tensor rank t as rank + t): a source rank sends
    /// the pieces of its state the others need, a receiver replaces its state with what it gets. Returns the bytes it sent or received.
    /// </summary>
    [Alias("TransferState")] Task<long> TransferState(StateTransferGroup group, int rank);

    [Alias("Release")] Task Release();
}
