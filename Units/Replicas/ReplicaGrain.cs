using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Units.Placement;
using Orleans.GrainDirectory;
using Orleans.Placement;

namespace Elastic.Units.Replicas;

/// <summary>
/// A data-parallel replica of one generation, on the silo of its first device: the shard groups of its pipeline stages'
/// tensor-parallel groups (one per device, pp x tp of them; a stage's tp on one silo, stages on any), which it drives
/// together. Every call goes to all of them at once, because their steps, digests and saves are collectives among them;
/// the first stage's tensor rank 0 answers for the replica.
/// </summary>
[DevicePlacement, Immovable, GrainDirectory(JobGrain.Directory)]
public sealed class ReplicaGrain : Grain, IReplicaGrain
{
    private IShardGroupGrain[] _ranks = [];

    public async Task<long> Prepare(ShardAssignment assignment)
    {
        var calls = Assign(assignment, (unit, a) => unit.Prepare(a));
        try
        {
            return (await Together(calls))[0];
        }
        catch when (assignment.AdoptState)
        {
            // Units that prepared took their device's state over: they leave it there again, for the next attempt (a pipeline's
            // stages join their groups apart, so one can fail while another has already adopted).
            await Task.WhenAll(_ranks.Where((_, u) => calls[u].IsCompletedSuccessfully).Select(async unit =>
            {
                try
                {
                    await unit.Handover();
                }
                catch
                {
                    // A unit that cannot hand over leaves the state lost to this attempt; the re-plan falls back as for any loss.
                }
            }));
            throw;
        }
    }

    public async Task<long> StageParked(ShardAssignment assignment)
    {
        try
        {
            return (await Together(Assign(assignment, (unit, a) => unit.StageParked(a))))[0];
        }
        catch
        {
            // Without every rank's part the state is no use: the ranks that staged theirs let it go.
            await Release();
            throw;
        }
    }

    public async Task<long> ParkedSteps(ShardAssignment assignment)
    {
        // Only a look: a grain that holds nothing goes when idle (a unit that stages the state later takes the same key afresh).
        if (_ranks.Length == 0) DeactivateOnIdle();
        var steps = await Together([.. Ranked(assignment).Select(r => r.Unit.ParkedSteps(r.Part))]);
        // Every rank's part, all at one step, or the state is no use.
        return steps.Distinct().Count() == 1 ? steps[0]
            : throw new InvalidOperationException($"the ranks of {this.GetPrimaryKeyString()} hold parked state at different steps ({string.Join(", ", steps)})");
    }

    /// <summary>Takes the shard groups of <paramref name="assignment"/>'s replica (one per stage and tensor rank) and gives each its part of it.</summary>
    private Task<long>[] Assign(ShardAssignment assignment, Func<IShardGroupGrain, ShardAssignment, Task<long>> call)
    {
        this.DelayDeactivation(TimeSpan.FromDays(30));
        var ranked = Ranked(assignment);
        _ranks = [.. ranked.Select(r => r.Unit)];
        return [.. ranked.Select(r => call(r.Unit, r.Part))];
    }

    /// <summary>The shard groups of <paramref name="assignment"/>'s replica, one per stage and tensor rank in rank order, each with its part of it.</summary>
    private (IShardGroupGrain Unit, ShardAssignment Part)[] Ranked(ShardAssignment assignment)
    {
        var (plan, tp) = (assignment.Plan, assignment.Plan.Tp);
        return [.. Enumerable.Range(0, plan.Pp * tp).Select(u => (
            GrainFactory.GetGrain<IShardGroupGrain>(UnitKeys.ShardGroup(this.GetPrimaryKeyString(), plan.DeviceOf(assignment.Replica, u / tp, u % tp).Silo, u / tp, u % tp)),
            assignment with { Stage = u / tp, TensorRank = u % tp }))];
    }

    public async Task<ShardStepResult> RunStep(long step, bool evaluate)
    {
        var results = await Together(Ranks().Select(u => u.RunStep(step, evaluate)).ToArray());
        return results[0] with { Memory = results.Select(r => r.Memory).Aggregate(DeviceMemory.Heavier) };
    }

    public Task<string> Digest() => First(u => u.Digest());

    public Task SaveModel(string directory) => All(u => u.SaveModel(directory));

    public Task BeginCheckpoint(long step, int writer, int writers) => All(u => u.BeginCheckpoint(step, writer, writers));

    public Task Restore(string manifest) => All(u => u.Restore(manifest));

    public Task FinishCheckpoint(long step) => All(u => u.FinishCheckpoint(step));

    public Task<long> CompletedSteps() => First(u => u.CompletedSteps());

    public Task<IReadOnlyList<ShardStepResult>> StepResults(long afterStep) => First(u => u.StepResults(afterStep));

    public async Task Handover()
    {
        await All(u => u.Handover());
        _ranks = [];
        this.DelayDeactivation(TimeSpan.FromMinutes(-1));
        this.DeactivateOnIdle();
    }

    public Task Stage() => All(u => u.Stage());

    public async Task<long> TransferState(StateTransferGroup group, int rank) =>
        (await Together(Ranks().Select((u, t) => u.TransferState(group, rank + t)).ToArray())).Sum();

    public async Task Release()
    {
        try
        {
            await Task.WhenAll(_ranks.Select(s => s.Release()));
        }
        finally
        {
            _ranks = [];
            this.DelayDeactivation(TimeSpan.FromMinutes(-1));
            this.DeactivateOnIdle();
        }
    }

    /// <summary>Calls every unit at once (their work is collective) and answers with the first one's result.</summary>
    private async Task<T> First<T>(Func<IShardGroupGrain, Task<T>> call) => (await Together(Ranks().Select(call).ToArray()))[0];

    private Task All(Func<IShardGroupGrain, Task> call) => Together(Ranks().Select(async u => { await call(u); return true; }).ToArray());

    /// <summary>
    /// Awaits the units' calls; when some fail, throws the one that caused the rest (a unit's own error, not the
    /// collective timeouts its peers then hit).
    /// </summary>
    private static async Task<T[]> Together<T>(Task<T>[] calls)
    {
        try
        {
            return await Task.WhenAll(calls);
        }
        catch
        {
            // Calls that were only cancelled leave their cancellation as the error (found by the chaos soak: picking a cause
            // among no faults failed the job with an index out of range).
            if (UnitFailedException.Cause(calls) is not { } cause) throw;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(cause);
            throw;
        }
    }

    private IShardGroupGrain[] Ranks() =>
        _ranks.Length > 0 ? _ranks : throw new InvalidOperationException($"{this.GetPrimaryKeyString()} is not prepared");
}
