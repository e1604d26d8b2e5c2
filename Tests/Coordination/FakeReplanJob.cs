using System.Net;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Grains.Jobs.Replanning;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;
using Microsoft.Extensions.Logging.Abstractions;

namespace Elastic.Tests.Coordination;

/// <summary>
/// A job for the <see cref="Replanner"/> without a cluster: its record, journal and checkpoints are the real ones over memory,
/// its capacity is a few one-device silos, and its units are <see cref="FakeUnit"/>s that keep a step count and fail on cue.
/// </summary>
internal sealed class FakeReplanJob : IReplanJob
{
    private readonly FakeCapacity _capacity;

    public FakeReplanJob(TrainingSpec spec, IReadOnlyList<string> silos, int replicas, long committed)
    {
        Silos = silos.Select((name, i) => (name, SiloAddress.New(IPAddress.Loopback, 11000 + i, 1))).ToDictionary(s => s.name, s => s.Item2);
        _capacity = new FakeCapacity(this);
        var state = new MemoryState { State = new JobRecord { Spec = spec, State = JobState.Running, Generation = 1 } };
        Journal = new JobJournal(state, new StepLog(Store, JobId), JobId, TimeProvider.System, NullLogger.Instance, recordChanged: () => { });
        Checkpoints = new CheckpointCoordinator(Store, JobId, Journal, () => { }, TimeProvider.System, TimeSpan.FromSeconds(5));
        Chooser = new LayoutChooser(spec);
        var devices = silos.Take(replicas).Select(Device).ToList();
        Record.Plan = ParallelPlan.Of(1, new Layout(replicas), devices);
        Units = [.. devices.Select(_ => new FakeUnit(committed))];
        for (var step = 1; step <= committed; step++) Journal.Commit(step, [new ShardStepResult(step, 2.0, 1e-3, 1.0, null, 0.1)], 0.1);
    }

    /// <summary>Where its checkpoints and step history are kept.</summary>
    public MemoryBlobStore Store { get; } = new();

    public static JobOptions Options => new() { ProbeTimeout = TimeSpan.FromMilliseconds(200), JoinTimeout = TimeSpan.FromSeconds(1), CollectiveTimeout = TimeSpan.FromSeconds(1) };

    public Dictionary<string, SiloAddress> Silos { get; }

    /// <summary>Silos that left: offered to no one.</summary>
    public HashSet<string> Gone { get; } = [];

    /// <summary>Silos that drain: still there, offered to no one, and a job's devices on them are leaving.</summary>
    public HashSet<string> Draining { get; } = [];

    /// <summary>Each allocation the re-plan asked for.</summary>
    public List<AllocationRequest> Allocations { get; } = [];

    /// <summary>Each call to Prepare: the plan and which replicas adopted.</summary>
    public List<(ParallelPlan Plan, bool[] Adopt)> Prepared { get; } = [];

    /// <summary>Runs before each Prepare returns (it may throw, or set up the new units' faults).</summary>
    public Action<ParallelPlan, FakeUnit[]>? OnPrepare { get; set; }

    public DeviceSlot Device(string silo) => new(Silos[silo], 0, $"127.0.0.1:{Silos[silo].Endpoint.Port}");

    public string JobId => "fake-job";
    public JobRecord Record => Journal.Record;
    public JobJournal Journal { get; }
    public CheckpointCoordinator Checkpoints { get; }
    public ElasticityPolicy Policy { get; } = new(Options, TimeProvider.System);
    public JobStanding Standing => new(Tenants.Default, 0, DateTimeOffset.UnixEpoch);
    public IReadOnlyList<int> Widths => Chooser.Widths;
    public LayoutChooser Chooser { get; }
    public bool CancelRequested => false;
    public IReplicaGrain[] Units { get; set; }

    public Task<T> OnCapacity<T>(Func<ICapacityGrain, Task<T>> call) => call(_capacity);
    public Task<PlanRanking> Rank(CapacityReview review, IReadOnlyCollection<SiloAddress>? exclude) => Task.FromResult(Chooser.Rank(review, exclude));

    public Task<ParallelPlan> NewPlan(IReadOnlyList<DeviceSlot> devices, Layout layout)
    {
        var plan = ParallelPlan.Of(Record.Generation + 1, layout with { Dp = devices.Count / layout.ReplicaDevices }, devices);
        (Record.Generation, Record.Plan) = (plan.Generation, plan);
        return Task.FromResult(plan);
    }

    public Task<IReplicaGrain[]> Prepare(ParallelPlan plan, bool[] adopt, TimeSpan joinTimeout)
    {
        Prepared.Add((plan, adopt));
        // Adopted state is as far as the furthest survivor; a replica that receives it gets there in the transfer.
        var furthest = Units.OfType<FakeUnit>().Select(u => u.Steps).DefaultIfEmpty(Journal.Committed).Max();
        var units = adopt.Select(a => new FakeUnit(a ? furthest : 0)).ToArray();
        OnPrepare?.Invoke(plan, units);
        return Task.FromResult<IReplicaGrain[]>(units);
    }

    /// <summary>The devices of each parked state a re-plan asked a unit to stage (a unit on a silo in <see cref="Killed"/> never answers).</summary>
    public List<IReadOnlyList<DeviceSlot>> Unparked { get; } = [];

    /// <summary>Silos that were killed: units there do not answer.</summary>
    public HashSet<string> Killed { get; } = [];

    /// <summary>The units made to look for or stage parked state, in order.</summary>
    public List<FakeUnit> ParkedUnits { get; } = [];

    /// <summary>State a coordinator lost mid-re-plan left on a device, at its step: what the silo reports to the one that takes over.</summary>
    public Dictionary<DeviceSlot, long> ParkedOn { get; } = [];

    /// <summary>How long a unit made to look for parked state takes to answer (its activation waiting on the grain directory).</summary>
    public TimeSpan ParkedAnswersAfter { get; set; }

    public (IReplicaGrain Unit, ShardAssignment Assignment) ParkedState(ParallelPlan plan, int holder)
    {
        var dead = Killed.Any(k => plan.Devices.Any(d => d.Silo.Equals(Silos[k])));
        var unit = new FakeUnit(ParkedOn.GetValueOrDefault(plan.Devices[0], Journal.Committed))
        {
            Dead = dead,
            Parked = ParkedOn.ContainsKey(plan.Devices[0]),
            AnswersAfter = ParkedAnswersAfter,
            OnStageParked = () => Unparked.Add(plan.Devices),
        };
        ParkedUnits.Add(unit);
        return (unit, new ShardAssignment(JobId, Record.Spec, plan, 0, 0, Options.CollectiveTimeout));
    }

    public Task ReleaseQuietly(IReplicaGrain[] units)
    {
        foreach (var unit in units.OfType<FakeUnit>()) unit.Released = true;
        return Task.CompletedTask;
    }

    public IShardGroupGrain ShardGroup(string key) => throw new NotSupportedException("one-device replicas have no shard groups to release apart");
    public byte[] PeerSecret(ParallelPlan plan) => new byte[32];
    public void WriteSoon() { }

    public IEnumerable<JobEvent> Events(string kind) => Record.Events.Where(e => e.Kind == kind);

    private sealed class MemoryState : IPersistentState<JobRecord>
    {
        public JobRecord State { get; set; } = new();
        public string? Etag { get; set; }
        public bool RecordExists => true;
        public Task ClearStateAsync() => Task.CompletedTask;
        public Task WriteStateAsync() => Task.CompletedTask;
        public Task ReadStateAsync() => Task.CompletedTask;
    }

    /// <summary>One-device silos; a job is offered every device on a silo that has not gone, and allocated the ones it keeps first.</summary>
    private sealed class FakeCapacity(FakeReplanJob job) : ICapacityGrain
    {
        private IEnumerable<DeviceSlot> Present(IReadOnlyCollection<SiloAddress> exclude) =>
            job.Silos.Where(s => !job.Gone.Contains(s.Key) && !job.Draining.Contains(s.Key) && !exclude.Contains(s.Value)).Select(s => job.Device(s.Key));

        public Task<CapacityReview> Review(string jobId, JobStanding standing, IReadOnlyList<int> widths, IReadOnlyList<DeviceSlot> held)
        {
            var offer = Present([]).Select(d => new SiloOffer(d.Silo, 1, "cpu", 4096)).ToList();
            var draining = job.Draining.Select(s => job.Silos[s]).ToHashSet();
            var leaving = held.Where(d => draining.Contains(d.Silo)).ToList();
            return Task.FromResult(new CapacityReview(leaving, leaving.Count > 0 ? "draining" : null, offer.Count, leaving.Count > 0 ? LeaveKind.Draining : LeaveKind.None, Offer: offer));
        }

        public Task<Allocation> Allocate(AllocationRequest request)
        {
            job.Allocations.Add(request);
            var usable = Present(request.Exclude).ToList();
            var ordered = request.Prefer.Where(usable.Contains).Concat(usable.Except(request.Prefer)).ToList();
            var width = request.Widths[0];
            var share = new JobShare(request.JobId, request.Standing, 0, int.MaxValue, null, null);
            return Task.FromResult(new Allocation(ordered.Count >= width ? ordered.Take(width).ToList() : [], share));
        }

        public Task Release(string jobId) => Task.CompletedTask;
        public Task<IReadOnlyList<SiloInventory>> GetInventory() => throw new NotSupportedException();
        public Task<IReadOnlyList<JobShare>> GetSchedule() => throw new NotSupportedException();
        public Task Drain(SiloAddress silo, string reason, bool preemption) => throw new NotSupportedException();
        public Task<IReadOnlyList<string>> HoldingJobs() => throw new NotSupportedException();
        public Task<int> JobsOn(SiloAddress silo) => throw new NotSupportedException();
    }
}

/// <summary>A replica that keeps only how many steps its state has taken; it can die (stop answering) when told to, or mid-transfer.</summary>
internal sealed class FakeUnit(long steps) : IReplicaGrain
{
    public long Steps { get; } = steps;
    public bool Dead { get; set; }
    public bool DiesInTransfer { get; set; }
    public bool Released { get; set; }
    public int Transfers { get; private set; }

    private Task Alive() => Dead ? new TaskCompletionSource().Task : Task.CompletedTask;

    /// <summary>A unit that handed its state over or was released holds nothing: it says so, as a real one does.</summary>
    /// <summary>How long it takes to answer how far it got (a unit still in a step its coordinator began answers when the step ends).</summary>
    public TimeSpan AnswersAfter { get; init; }

    public async Task<long> CompletedSteps()
    {
        await Alive();
        await Task.Delay(AnswersAfter);
        return HandedOver || Released ? throw new InvalidOperationException("this unit holds no state") : Steps;
    }

    public bool HandedOver { get; private set; }

    public async Task<long> TransferState(StateTransferGroup group, int rank)
    {
        await Alive();
        Transfers++;
        if (DiesInTransfer)
        {
            Dead = true;
            throw new UnitFailedException("the unit's silo was killed mid-transfer");
        }
        return 1_000;
    }

    public Task<string> Digest() => Task.FromResult("the same state");
    public Task Stage() => Alive();
    /// <summary>Whether state lies parked on this unit's devices (a unit made to look for it).</summary>
    public bool Parked { get; init; }
    public Action? OnStageParked { get; init; }

    public async Task<long> StageParked(ShardAssignment assignment)
    {
        OnStageParked?.Invoke();
        await Alive();
        return Steps;
    }

    public async Task<long> ParkedSteps(ShardAssignment assignment)
    {
        await Alive();
        await Task.Delay(AnswersAfter);
        return Parked ? Steps : throw new InvalidOperationException("no state of the job is parked on these devices");
    }
    public async Task Handover()
    {
        await Alive();
        HandedOver = true;
    }
    public Task Release() => Task.CompletedTask;
    public Task<IReadOnlyList<ShardStepResult>> StepResults(long afterStep) => Task.FromResult<IReadOnlyList<ShardStepResult>>([]);
    public Task<long> Prepare(ShardAssignment assignment) => throw new NotSupportedException();
    public Task<ShardStepResult> RunStep(long step, bool evaluate) => throw new NotSupportedException();
    /// <summary>The step of the last checkpoint this unit was asked to write (it writes nothing: the commit then finds no parts).</summary>
    public long? CheckpointBegun { get; private set; }

    public async Task BeginCheckpoint(long step, int writer, int writers)
    {
        await Alive();
        CheckpointBegun = step;
    }

    public Task FinishCheckpoint(long step) => Task.CompletedTask;
    /// <summary>Restores that fail as if the checkpoint store did not answer, before they succeed.</summary>
    public int StoreOutages { get; set; }
    public int Restores { get; private set; }

    /// <summary>A manifest whose chunks this unit finds damaged.</summary>
    public string? Damaged { get; set; }

    public async Task Restore(string manifest)
    {
        await Alive();
        Restores++;
        if (StoreOutages-- > 0) throw new StoreUnavailableException($"the checkpoint store did not answer while reading {manifest}: 503");
        if (manifest == Damaged) throw new CheckpointUnreadableException($"a chunk of {manifest} fails its SHA-256 check");
    }
    public Task SaveModel(string directory) => throw new NotSupportedException();
}
