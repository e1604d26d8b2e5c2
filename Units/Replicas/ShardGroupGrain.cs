using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Training.Collectives;
using Elastic.Training.Collectives.Nccl;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using Elastic.Training.Parallel;
using Elastic.Units.Devices;
using Elastic.Units.Placement;
using Microsoft.Extensions.Logging;
using Orleans.GrainDirectory;
using Orleans.Placement;

namespace Elastic.Units.Replicas;

/// <summary>
/// One device's share of one replica (its pipeline stage's tensor rank), on the silo that owns its device. It holds the model state of its
/// shard, but every tensor operation runs on the device's worker thread; this grain only schedules it.
/// </summary>
[DevicePlacement, Immovable, GrainDirectory(JobGrain.Directory)]
public sealed class ShardGroupGrain(SiloDevices devices, DataPlane dataPlane, ILocalSiloDetails silo, IBlobStore checkpoints, NcclSupport nccl, ILogger<ShardGroupGrain> log)
    : Grain, IShardGroupGrain
{
    /// <summary>More than a job commits between two persists of its record (it persists at least every few steps and at every re-plan).</summary>
    private const int ResultsKept = 1024;
    private readonly CheckpointStaging _staging = new();
    private readonly List<ShardStepResult> _results = [];
    private ShardAssignment? _assignment;
    private DeviceWorker? _worker;
    private DataParallelTrainer? _trainer;
    private (long Step, Task Upload)? _checkpoint;
    /// <summary>State copied to host memory (a unit that left its devices to serve): what it holds, and the keys it writes as a checkpoint's only writer.</summary>
    private (long Steps, IReadOnlyList<ShardedTensor> State, IReadOnlySet<string> Written)? _staged;

    public async Task<long> Prepare(ShardAssignment assignment)
    {
        if (_assignment is not null)
            return Same(_assignment, assignment) && _trainer is not null
                ? _trainer.Trainer.Model.WholeParameterCount
                : throw new InvalidOperationException($"{this.GetPrimaryKeyString()} is already prepared for another assignment");
        if (assignment.Device.Silo != silo.SiloAddress)
            throw new InvalidOperationException($"{this.GetPrimaryKeyString()} runs on {silo.SiloAddress} but its device is on {assignment.Device.Silo}");
        var key = this.GetPrimaryKeyString();
        // A newer generation of this job that takes the device tells this unit to let go of what it still holds.
        var lease = new DeviceLease(key, assignment.JobId, assignment.Plan.Generation, () => _ = GrainFactory.GetGrain<IShardGroupGrain>(key).Release());
        _worker = await devices.AcquireAsync(assignment.Device.Device, lease, assignment.JoinTimeout ?? assignment.CollectiveTimeout);
        _assignment = assignment;
        this.DelayDeactivation(TimeSpan.FromDays(30));
        ProcessGroups? groups = null;
        Trainer? adopted = null;
        try
        {
            var device = devices.TorchDevice(assignment.Device.Device);
            var deviceTransport = nccl.For(device.type == TorchSharp.DeviceType.CUDA ? device.index : null, assignment.DeviceGroupIds,
                assignment.JoinTimeout ?? assignment.CollectiveTimeout);
            groups = await ProcessGroups.JoinAsync(dataPlane, assignment.GroupPrefix, assignment.Plan.ToGrid(), assignment.Rank, assignment.Endpoints,
                GroupSecret.From(assignment.PeerSecret), assignment.CollectiveTimeout, assignment.JoinTimeout, deviceTransport);
            foreach (var (group, transport) in groups.Transports.Where(t => assignment.DeviceGroupIds?.ContainsKey(t.Key) == true))
                log.LogInformation("{Unit}: group {Group} sends tensors between processes over {Transport}", key, group, transport);
            var spec = assignment.Spec;
            var threads = spec.Runtime.ThreadsPerDevice;
            adopted = assignment.AdoptState ? await devices.TakeOverAsync(assignment.Device.Device, assignment.JobId, threads) : null;
            // State parked here that this unit does not adopt is no longer wanted (the re-plan staged it first if it had to serve).
            if (!assignment.AdoptState) await devices.DiscardAsync(assignment.Device.Device, threads);
            if (assignment.AdoptState && adopted is null)
                throw new InvalidOperationException($"{this.GetPrimaryKeyString()}: no state of job {assignment.JobId} was handed over on {assignment.Device}");
            _trainer = await _worker.Run(threads, () => RankEngine.Build(spec, device, groups, adopted));
            return _trainer.Trainer.Model.WholeParameterCount;
        }
        catch
        {
            groups?.Dispose();
            // State taken over but not trained on goes back to the device, where a later attempt finds it.
            if (adopted is not null && _trainer is null)
                await devices.HandOverAsync(assignment.Device.Device, assignment.JobId, adopted, assignment.Spec.Runtime.ThreadsPerDevice);
            await Release();
            throw;
        }
    }

    public Task<ShardStepResult> RunStep(long step, bool evaluate)
    {
        var (trainer, threads) = Prepared();
        return _worker!.Run(threads, () =>
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var result = trainer.Step(step);
            // Under ZeRO 3 evaluation gathers parameters over the replicas: all of them run it; with experts spread, replica 0's expert group does.
            double? heldOut = evaluate && (trainer.Replica < trainer.Trainer.Model.Experts.Degree || trainer.Trainer.Zero is { Level: >= 3 }) ? trainer.Trainer.EvaluateHeldOut() : null;
            var memory = trainer.Memory();
            var done = new ShardStepResult(step, result.Loss, result.LearningRate, result.GradNorm, heldOut, watch.Elapsed.TotalSeconds,
                memory with { Staging = memory.Staging + _staging.Bytes }, result.Experts);
            lock (_results)
            {
                if (_results.Count == ResultsKept) _results.RemoveAt(0);
                _results.Add(done);
            }
            return done;
        });
    }

    public Task<IReadOnlyList<ShardStepResult>> StepResults(long afterStep)
    {
        lock (_results) return Task.FromResult<IReadOnlyList<ShardStepResult>>(_results.Where(r => r.Step > afterStep).ToList());
    }

    public Task<string> Digest()
    {
        var (trainer, threads) = Prepared();
        return _worker!.Run(threads, () => trainer.Trainer.ParameterDigest());
    }

    public Task SaveModel(string directory)
    {
        var (trainer, threads) = Prepared();
        var spec = _assignment!.Spec;
        return _worker!.Run(threads, () =>
        {
            ModelFolder.Save(directory, spec, trainer.Trainer, write: trainer.Replica == 0);
            return true;
        });
    }

    public async Task BeginCheckpoint(long step, int writer, int writers)
    {
        if (_checkpoint is { Upload.IsCompleted: false } pending)
            throw new InvalidOperationException($"the checkpoint of step {pending.Step} is still uploading");
        IReadOnlyList<ShardedTensor> state;
        if (_staged is { } staged)
        {
            // A job left with no devices keeps the state a staged unit holds in a checkpoint of that replica alone.
            if (writers != 1 || staged.Steps != step)
                throw new InvalidOperationException($"{this.GetPrimaryKeyString()} holds step {staged.Steps} in host memory: it writes that step as the only writer, not step {step} as writer {writer} of {writers}");
            state = [.. staged.State.Where(t => staged.Written.Contains(t.Key))];
        }
        else
        {
            var (trainer, threads) = Prepared();
            // The staging buffers are reused: safe, because the job starts a checkpoint only after the previous one committed.
            state = await _worker!.Run(threads, () => EngineCheckpoint.Capture(trainer.Trainer, _staging, writer, writers));
        }
        var a = _assignment!;
        var upload = new CheckpointWriter(checkpoints, CheckpointLayout.ForJob(a.JobId));
        var name = UnitKeys.PartName(writer, a.Stage, a.TensorRank);
        _checkpoint = (step, Task.Run(async () =>
        {
            var chunks = await upload.WriteChunksAsync(step, a.Plan.Generation, name, state);
            await upload.WritePartAsync(step, a.Plan.Generation, name, chunks);
        }));
    }

    public async Task Restore(string manifest)
    {
        var (trainer, threads) = Prepared();
        var reader = new CheckpointReader(checkpoints, CheckpointLayout.ForJob(_assignment!.JobId));
        CheckpointManifest saved;
        IReadOnlyDictionary<string, byte[]> state;
        try
        {
            saved = await reader.ReadManifestAsync(manifest);
            state = await EngineCheckpoint.ReadAsync(reader, saved, await _worker!.Run(threads, () => EngineCheckpoint.Layout(trainer.Trainer)));
        }
        catch (CheckpointCorruptException e)
        {
            throw new CheckpointUnreadableException(e.Message);
        }
        catch (Exception e) when (StoreFailures.IsUnavailable(e))
        {
            // Nothing was restored: the job may ask again once the store answers.
            throw new StoreUnavailableException($"the checkpoint store did not answer while {this.GetPrimaryKeyString()} read {manifest}: {StoreFailures.Describe(e)}");
        }
        await _worker!.Run(threads, () =>
        {
            trainer.Trainer.Restore(saved.Step, (key, _) => state[key]);
            return true;
        });
    }

    public Task FinishCheckpoint(long step) =>
        _checkpoint is { } c && c.Step == step ? c.Upload : throw new InvalidOperationException($"no checkpoint of step {step} was begun here");

    public Task<long> CompletedSteps()
    {
        if (_staged is { } staged) return Task.FromResult(staged.Steps);
        var (trainer, threads) = Prepared();
        return _worker!.Run(threads, () => trainer.Trainer.CompletedSteps);
    }

    public async Task Handover()
    {
        var (trainer, threads) = Prepared();
        var assignment = _assignment!;
        _trainer = null;
        await devices.HandOverAsync(assignment.Device.Device, assignment.JobId, await _worker!.Run(threads, trainer.Detach), threads);
        await Release();
    }

    public async Task Stage()
    {
        var (trainer, threads) = Prepared();
        var a = _assignment!;
        _trainer = null;
        _staged = await _worker!.Run(threads, () => ToHost(trainer.Trainer, trainer));
        devices.Release(a.Device.Device, this.GetPrimaryKeyString());
    }

    public async Task<long> StageParked(ShardAssignment assignment)
    {
        if (_staged is { } done) return done.Steps;
        var key = this.GetPrimaryKeyString();
        var (device, threads) = (assignment.Device.Device, assignment.Spec.Runtime.ThreadsPerDevice);
        _worker = await devices.AcquireAsync(device, new DeviceLease(key, assignment.JobId, assignment.Plan.Generation), assignment.JoinTimeout ?? assignment.CollectiveTimeout);
        _assignment = assignment;
        this.DelayDeactivation(TimeSpan.FromDays(30));
        try
        {
            var parked = await devices.TakeOverAsync(device, assignment.JobId, threads)
                ?? throw new InvalidOperationException($"{key}: no state of job {assignment.JobId} is parked on {assignment.Device}");
            try
            {
                _staged = await _worker.Run(threads, () => ToHost(parked, parked));
            }
            catch
            {
                // Left where it was: a later attempt may still adopt it there.
                await devices.HandOverAsync(device, assignment.JobId, parked, threads);
                throw;
            }
            return _staged.Value.Steps;
        }
        finally
        {
            devices.Release(device, key);
        }
    }

    public Task<long> ParkedSteps(ShardAssignment assignment)
    {
        if (_staged is { } done) return Task.FromResult(done.Steps);
        var key = this.GetPrimaryKeyString();
        // Placed on another silo (its own was gone), this grain would look at the wrong devices.
        if (assignment.Device.Silo != silo.SiloAddress)
            throw new InvalidOperationException($"{key} runs on {silo.SiloAddress} but its device is on {assignment.Device.Silo}");
        var steps = devices.ParkedSteps(assignment.Device.Device, assignment.JobId);
        if (_assignment is null) DeactivateOnIdle();
        return steps is { } found ? Task.FromResult(found) : throw new InvalidOperationException($"{key}: no state of job {assignment.JobId} is parked on {assignment.Device}");
    }

    /// <summary>Copies a trainer's state to host memory, then frees <paramref name="owner"/> (the trainer, or what wraps it) on the device.</summary>
    private static (long Steps, IReadOnlyList<ShardedTensor> State, IReadOnlySet<string> Written) ToHost(Trainer trainer, IDisposable owner)
    {
        var held = (trainer.CompletedSteps, EngineCheckpoint.Held(trainer), EngineCheckpoint.WrittenAlone(trainer));
        owner.Dispose();
        return held;
    }

    public async Task<long> TransferState(StateTransferGroup group, int rank)
    {
        var a = _assignment ?? throw new InvalidOperationException($"{this.GetPrimaryKeyString()} is not prepared (its silo may have restarted)");
        using var transfer = await dataPlane.JoinAsync(group.Name, rank, group.Endpoints, GroupSecret.From(group.Secret), group.Timeout, a.JoinTimeout);
        // The transfer's calls block until their peers answer: they run on the device's thread, or a staged unit's own thread,
        // never on the thread pool (blocked pool threads would starve the other units' joins).
        if (_staged is { } staged)
            return await Task.Factory.StartNew(() => RegionTransfer.Serve(transfer, group.Sources, staged.Steps, staged.State),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var (trainer, threads) = Prepared();
        return await _worker!.Run(threads, () =>
        {
            if (rank < group.Sources) return RegionTransfer.Serve(transfer, group.Sources, trainer.Trainer.CompletedSteps, EngineCheckpoint.Held(trainer.Trainer));
            var (step, state, bytes) = RegionTransfer.Receive(transfer, group.Sources, EngineCheckpoint.Layout(trainer.Trainer));
            trainer.Trainer.Restore(step, (key, _) => state[key]);
            return bytes;
        });
    }

    public async Task Release()
    {
        var (assignment, trainer, worker) = (_assignment, _trainer, _worker);
        (_trainer, _staged) = (null, null);
        if (trainer is not null && worker is not null)
            await worker.Run(assignment!.Spec.Runtime.ThreadsPerDevice, () =>
            {
                trainer.Dispose();
                return true;
            });
        if (assignment is not null) devices.Release(assignment.Device.Device, this.GetPrimaryKeyString());
        // An upload in flight still reads the staging buffers: they go when it ends.
        var upload = _checkpoint?.Upload ?? Task.CompletedTask;
        _ = upload.ContinueWith(_ => _staging.Dispose(), TaskScheduler.Default);
        this.DelayDeactivation(TimeSpan.FromMinutes(-1));
        this.DeactivateOnIdle();
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken) =>
        _trainer is null ? Task.CompletedTask : Release();

    private (DataParallelTrainer Trainer, int Threads) Prepared() =>
        _trainer is { } trainer && _assignment is { } assignment
            ? (trainer, assignment.Spec.Runtime.ThreadsPerDevice)
            : throw new InvalidOperationException($"{this.GetPrimaryKeyString()} is not prepared (its silo may have restarted)");

    private static bool Same(ShardAssignment a, ShardAssignment b) =>
        a.JobId == b.JobId && a.Plan.Generation == b.Plan.Generation && a.Replica == b.Replica && a.Stage == b.Stage && a.TensorRank == b.TensorRank;
}
