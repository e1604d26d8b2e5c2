namespace Elastic.GrainInterfaces;

/// <summary>
/// The cluster's devices (key <see cref="DefaultKey"/>): the inventory from membership and silo metadata, who holds
/// what, and which silos are draining (leaving gracefully or evicted with notice) and take no new work.
/// </summary>
[Alias("Elastic.ICapacityGrain")]
public interface ICapacityGrain : IGrainWithStringKey
{
    const string DefaultKey = "default";

    [Alias("GetInventory")] Task<IReadOnlyList<SiloInventory>> GetInventory();

    /// <summary>
    /// Allocates the largest acceptable width the free devices and the job's fair share allow (replacing what the job held),
    /// taking the job's preferred devices first and never a device on a draining or excluded silo; no devices when no width
    /// fits (the job is queued: it keeps its place while it asks again).
    /// </summary>
    [Alias("Allocate")] Task<Allocation> Allocate(AllocationRequest request);

    /// <summary>
    /// What has changed for a job holding <paramref name="held"/>: devices it must leave, the widest of <paramref name="widths"/>
    /// its fair share and the free devices allow now, and per silo the devices it could hold (what its planner plans on).
    /// </summary>
    [Alias("Review")] Task<CapacityReview> Review(string jobId, JobStanding standing, IReadOnlyList<int> widths, IReadOnlyList<DeviceSlot> held);

    /// <summary>Every job the scheduler knows (running or queued), in its order, with its share.</summary>
    [Alias("GetSchedule")] Task<IReadOnlyList<JobShare>> GetSchedule();

    /// <summary>The job gives its devices back and leaves the queue.</summary>
    [Alias("Release")] Task Release(string jobId);

    /// <summary>
    /// Marks a silo as leaving: no new allocations there; jobs holding its devices move off at their next step boundary.
    /// <paramref name="preemption"/>: the silo leaves because its VM is evicted (counted apart from failures).
    /// </summary>
    [Alias("Drain")] Task Drain(SiloAddress silo, string reason, bool preemption);

    /// <summary>The jobs that hold devices.</summary>
    [Alias("HoldingJobs")] Task<IReadOnlyList<string>> HoldingJobs();

    /// <summary>How many jobs still hold devices on <paramref name="silo"/>.</summary>
    [Alias("JobsOn")] Task<int> JobsOn(SiloAddress silo);
}
