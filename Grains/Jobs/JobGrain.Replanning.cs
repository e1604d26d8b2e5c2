using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Grains.Jobs.Replanning;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Re-planning: when the job changes its layout at a step boundary (asked for, or weighed worth it on new capacity), and what
/// the <see cref="Replanner"/> that moves it needs of the grain.
/// </summary>
public sealed partial class JobGrain : IReplanJob
{
    private Replanner? _replanner;

    private Replanner Replanner => _replanner ??= new Replanner(this, options.Value, time);

    public async Task<JobStatus?> ChangeLayout(string plan)
    {
        if (!job.RecordExists) return null;
        if (Record.State is not (JobState.Running or JobState.Planning or JobState.Pending))
            throw new InvalidOperationException($"job {JobId} is {Record.State}; only a job that has not ended can change its layout");
        var silos = await OnCapacity(c => c.GetInventory());
        var asked = LayoutRequest.Check(plan, Record.Spec, silos.Select(s => s.Devices).DefaultIfEmpty(0).Max());
        var layout = SpecLayout.Asked(Record.Spec, Current, asked);
        Policy.Request(layout);
        Journal.Add(JobEventKinds.ReplanRequested, $"{layout} asked for; the job moves to it at the next step boundary");
        return Journal.Status();
    }

    /// <summary>At a step boundary: the re-plan the elasticity policy asks for, given what the capacity grain says.</summary>
    private async Task<ReplanChange?> CapacityChange()
    {
        var plan = Record.Plan!;
        var review = await OnCapacity(c => c.Review(JobId, Standing, Widths, plan.Devices));
        var growth = review.WidestPlan > plan.DeviceCount ? await Better(review, plan) : null;
        return Policy.Decide(review, plan, () => growth);
    }

    /// <summary>What the job last weighed growing onto: the offer (silos and counts, and its share) and the answer.</summary>
    private (string Offer, (Layout Target, string Why)? Answer)? _weighed;

    /// <summary>
    /// A layout on what the job could hold now that is worth moving to from <paramref name="plan"/>, and why; null when none is
    /// (the job says once per offer what it weighed). The same offer is weighed once.
    /// </summary>
    private async Task<(Layout Target, string Why)?> Better(CapacityReview review, ParallelPlan plan)
    {
        var offer = string.Join(";", (review.Offer ?? []).Select(o => $"{o.Silo}:{o.Devices}")) + $"|{review.Cap}|{plan.Generation}";
        if (_weighed is { } weighed && weighed.Offer == offer) return weighed.Answer;
        (Layout, string)? answer = null;
        var current = plan.ToLayout();
        if ((await Rank(review)).Choice is { } best && best.Layout != current)
        {
            var now = Chooser.Predict(current, review);
            var link = InventoryShape.Of(review.Offer ?? []) is { Devices: > 0 } shape ? shape.Weakest.InterNode.BusBandwidthGBs * 1e9 : 1e9;
            // Parameters and both AdamW moments, in fp32.
            var verdict = new MoveWeighing(options.Value.MinReplanGain, Replanner.LastPrepare).Weigh(now, best, Record.Parameters * 12.0, link,
                MoveWeighing.ExpectedStay(Record.Events.Where(e => e.Kind == JobEventKinds.Replanned).Select(e => e.Time).ToList(), options.Value.ExpectedStay));
            if (verdict.Move) answer = (best.Layout, $"{current} can become {best.Layout}: {verdict.Why}");
            else Journal.Add(JobEventKinds.ReplanDeclined, $"{current} stays rather than become {best.Layout}: {verdict.Why}");
        }
        _weighed = (offer, answer);
        return answer;
    }

    /// <summary>Moves the job to a new plan at a step boundary (<see cref="Replanner"/>); false when no layout runs on the devices left.</summary>
    private Task<bool> Replan(ReplanChange change) => Replanner.Replan(change);

    string IReplanJob.JobId => JobId;
    JobRecord IReplanJob.Record => Record;
    JobJournal IReplanJob.Journal => Journal;
    CheckpointCoordinator IReplanJob.Checkpoints => Checkpoints;
    ElasticityPolicy IReplanJob.Policy => Policy;
    JobStanding IReplanJob.Standing => Standing;
    IReadOnlyList<int> IReplanJob.Widths => Widths;
    LayoutChooser IReplanJob.Chooser => Chooser;
    bool IReplanJob.CancelRequested => Record.CancelRequested;

    IReplicaGrain[] IReplanJob.Units
    {
        get => _units;
        set => _units = value;
    }

    Task<T> IReplanJob.OnCapacity<T>(Func<ICapacityGrain, Task<T>> call) => OnCapacity(call);
    Task<PlanRanking> IReplanJob.Rank(CapacityReview review, IReadOnlyCollection<SiloAddress>? exclude) => Rank(review, exclude);
    Task<ParallelPlan> IReplanJob.NewPlan(IReadOnlyList<DeviceSlot> devices, Layout layout) => NewPlan(devices, layout);
    Task<IReplicaGrain[]> IReplanJob.Prepare(ParallelPlan plan, bool[] adopt, TimeSpan joinTimeout) => Prepare(plan, adopt, joinTimeout);
    (IReplicaGrain, ShardAssignment) IReplanJob.ParkedState(ParallelPlan plan, int holder) =>
        (GrainFactory.GetGrain<IReplicaGrain>(UnitKeys.ParkedState(JobId, plan, holder)), Assignment(plan));
    Task IReplanJob.ReleaseQuietly(IReplicaGrain[] units) => ReleaseQuietly(units);
    IShardGroupGrain IReplanJob.ShardGroup(string key) => GrainFactory.GetGrain<IShardGroupGrain>(key);
    byte[] IReplanJob.PeerSecret(ParallelPlan plan) => PeerSecret(plan);
    void IReplanJob.WriteSoon() => Writer.WriteSoon();

    /// <summary>One device as itself; a tensor-parallel group as its silo and device indices.</summary>
    private static string Describe(IReadOnlyList<DeviceSlot> group) =>
        group.Count == 1 ? group[0].ToString() : $"{group[0].Silo}/devices {string.Join("+", group.Select(d => d.Device))}";
}
