using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Grains.Placement;
using Orleans.GrainDirectory;
using Orleans.Placement;

namespace Elastic.Grains.Replicas;

/// <summary>
/// A data-parallel replica of one generation: the pipeline of its shard groups, on the silo of its first
/// stage. With one stage (pp = 1) it hands each step to that stage; pipeline schedules will live here.
/// </summary>
[DevicePlacement, Immovable, GrainDirectory(JobGrain.Directory)]
public sealed class ReplicaGrain : Grain, IReplicaGrain
{
    private IShardGroupGrain[] _stages = [];

    public static string KeyOf(string jobId, ParallelPlan plan, int replica) =>
        DeviceKey.Of($"{jobId}/g{plan.Generation}/r{replica}", plan.DeviceOf(replica).Silo);

    public async Task<long> Prepare(ShardAssignment assignment)
    {
        if (assignment.Plan.Pp != 1 || assignment.Plan.Tp != 1)
            throw new NotSupportedException($"plan {assignment.Plan}: this release runs pp = 1 and tp = 1 only");
        this.DelayDeactivation(TimeSpan.FromDays(30));
        _stages = [GrainFactory.GetGrain<IShardGroupGrain>($"{this.GetPrimaryKeyString()}/s0")];
        return await _stages[0].Prepare(assignment with { Stage = 0 });
    }

    public Task<ShardStepResult> RunStep(long step, bool evaluate) => Stage0().RunStep(step, evaluate);

    public Task<string> Digest() => Stage0().Digest();

    public Task SaveModel(string directory) => Stage0().SaveModel(directory);

    public Task BeginCheckpoint(long step, int writer, int writers) => Stage0().BeginCheckpoint(step, writer, writers);

    public Task Restore(string manifest) => Stage0().Restore(manifest);

    public Task FinishCheckpoint(long step) => Stage0().FinishCheckpoint(step);

    public Task<long> CompletedSteps() => Stage0().CompletedSteps();

    public Task<IReadOnlyList<ShardStepResult>> StepResults(long afterStep) => Stage0().StepResults(afterStep);

    public async Task Handover()
    {
        await Stage0().Handover();
        _stages = [];
        this.DelayDeactivation(TimeSpan.FromMinutes(-1));
        this.DeactivateOnIdle();
    }

    public Task TransferState(StateTransferGroup group, int rank) => Stage0().TransferState(group, rank);

    public async Task Release()
    {
        try
        {
            await Task.WhenAll(_stages.Select(s => s.Release()));
        }
        finally
        {
            _stages = [];
            this.DelayDeactivation(TimeSpan.FromMinutes(-1));
            this.DeactivateOnIdle();
        }
    }

    private IShardGroupGrain Stage0() =>
        _stages.Length > 0 ? _stages[0] : throw new InvalidOperationException($"{this.GetPrimaryKeyString()} is not prepared");
}
