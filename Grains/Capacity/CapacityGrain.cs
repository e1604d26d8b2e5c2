using System.Globalization;
using Elastic.GrainInterfaces;
using Elastic.Grains.Devices;
using Elastic.Grains.Jobs;
using Elastic.Grains.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Elastic.Grains.Capacity;

/// <summary>
/// The cluster's device inventory, rebuilt on every call from membership (active silos only) and silo
/// metadata, the allocation of devices to jobs, and the silos that are draining. Allocations on silos that left are dropped.
/// Allocations and drains are persisted, so that when this grain's silo goes the next activation knows who holds what.
/// </summary>
[OnDemandPlacement]
public sealed class CapacityGrain(
    [PersistentState("capacity", StorageNames.Jobs)] IPersistentState<CapacityRecord> record,
    IClusterMembershipService membership,
    ISiloMetadataCache metadata) : Grain, ICapacityGrain
{
    private Dictionary<string, List<DeviceSlot>> Allocations => record.State.Held;
    private Dictionary<string, Drain> Draining => record.State.Draining;

    public Task<IReadOnlyList<SiloInventory>> GetInventory()
    {
        var inventory = Silos().ToList();
        var inUse = Held().GroupBy(d => d.Silo).ToDictionary(g => g.Key, g => g.Count());
        return Task.FromResult<IReadOnlyList<SiloInventory>>(inventory
            .Select(s => s with { DevicesInUse = inUse.GetValueOrDefault(s.Silo) })
            .ToList());
    }

    public async Task<IReadOnlyList<DeviceSlot>> Allocate(AllocationRequest request)
    {
        Allocations.Remove(request.JobId, out var before);
        var usable = Usable(request.Exclude);
        var preferred = request.Prefer.Where(usable.Contains).Distinct().ToList();
        // Then fill the silos with the most free devices first: fewer silos means more replicas linked in memory.
        var others = usable.Except(preferred).GroupBy(d => d.Silo).OrderByDescending(g => g.Count()).SelectMany(g => g).ToList();
        var blocks = TensorBlocks.Of(preferred.Concat(others), request.TensorParallel);
        var width = request.Widths.Where(w => w <= blocks.Count * request.TensorParallel).DefaultIfEmpty(0).Max();
        var slots = blocks.Take(width / request.TensorParallel).SelectMany(b => b).ToList();
        if (width > 0) Allocations[request.JobId] = slots;
        else if (request.KeepWhenShort && before is not null) Allocations[request.JobId] = before;
        await record.WriteStateAsync();
        return slots;
    }

    public Task<CapacityReview> Review(string jobId, IReadOnlyList<int> widths, IReadOnlyList<DeviceSlot> held, int tensorParallel)
    {
        var active = Silos().Select(s => s.Silo).ToHashSet();
        var leaving = held.Where(d => !active.Contains(d.Silo) || DrainOf(d.Silo) is not null).ToList();
        var reason = leaving.Select(d => d.Silo).Distinct()
            .Select(silo => DrainOf(silo) is { } why ? $"{silo} is draining ({why.Reason})" : $"{silo} left the cluster")
            .ToList();
        var kind = leaving.Select(d => !active.Contains(d.Silo) ? LeaveKind.Lost : DrainOf(d.Silo)!.Preemption ? LeaveKind.Preempted : LeaveKind.Draining)
            .DefaultIfEmpty(LeaveKind.None).Max();
        var available = TensorBlocks.UsableDevices(Usable([]).Concat(held.Where(d => !leaving.Contains(d))), tensorParallel);
        var widest = widths.Where(w => w <= available).DefaultIfEmpty(0).Max();
        return Task.FromResult(new CapacityReview(leaving, reason.Count > 0 ? string.Join("; ", reason) : null, widest, kind));
    }

    public async Task Release(string jobId)
    {
        if (Allocations.Remove(jobId)) await record.WriteStateAsync();
    }

    public async Task Drain(SiloAddress silo, string reason, bool preemption)
    {
        var active = Silos().Select(s => s.Silo).ToHashSet();
        foreach (var gone in Draining.Keys.Where(d => !active.Contains(SiloAddress.FromParsableString(d))).ToList()) Draining.Remove(gone);
        Draining[silo.ToParsableString()] = new Drain(reason, preemption);
        await record.WriteStateAsync();
    }

    public Task<IReadOnlyList<string>> HoldingJobs() => Task.FromResult<IReadOnlyList<string>>(Allocations.Keys.ToList());

    public Task<int> JobsOn(SiloAddress silo) =>
        Task.FromResult(Allocations.Count(job => job.Value.Any(d => d.Silo.Equals(silo))));

    private Drain? DrainOf(SiloAddress silo) => Draining.GetValueOrDefault(silo.ToParsableString());

    /// <summary>Free devices on active silos that are neither draining nor excluded.</summary>
    private HashSet<DeviceSlot> Usable(IReadOnlyList<SiloAddress> exclude)
    {
        var taken = Held().ToHashSet();
        return Silos().Where(s => DrainOf(s.Silo) is null && !exclude.Contains(s.Silo))
            .SelectMany(s => Enumerable.Range(0, s.Devices).Select(d => new DeviceSlot(s.Silo, d, s.DataPlane, s.DeviceModel)))
            .Where(d => !taken.Contains(d))
            .ToHashSet();
    }

    private IEnumerable<DeviceSlot> Held()
    {
        var active = Silos().Select(s => s.Silo).ToHashSet();
        return Allocations.Values.SelectMany(slots => slots).Where(d => active.Contains(d.Silo));
    }

    private IEnumerable<SiloInventory> Silos()
    {
        foreach (var member in membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).OrderBy(m => m.SiloAddress.ToParsableString(), StringComparer.Ordinal))
        {
            var values = metadata.GetSiloMetadata(member.SiloAddress).Metadata;
            if (!values.TryGetValue(SiloMetadataKeys.DataPlane, out var dataPlane)) continue;
            yield return new SiloInventory(member.SiloAddress, member.Name,
                values.GetValueOrDefault(SiloMetadataKeys.DeviceKind, "cpu"),
                Number(values, SiloMetadataKeys.Devices), 0,
                Number(values, SiloMetadataKeys.DeviceMemoryMiB),
                (int)Number(values, SiloMetadataKeys.ThreadsPerDevice),
                dataPlane,
                values.GetValueOrDefault(SiloMetadataKeys.DeviceModel, "cpu"));
        }
    }

    private static int Number(IReadOnlyDictionary<string, string> values, string key) =>
        values.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
}
