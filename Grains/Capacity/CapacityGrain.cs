using System.Globalization;
using Elastic.GrainInterfaces;
using Elastic.Grains.Devices;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Elastic.Grains.Capacity;

/// <summary>
/// The cluster's device inventory, rebuilt on every call from membership (active silos only) and silo
/// metadata, and the allocation of devices to jobs. Allocations on silos that left are dropped.
/// </summary>
public sealed class CapacityGrain(IClusterMembershipService membership, ISiloMetadataCache metadata) : Grain, ICapacityGrain
{
    private readonly Dictionary<string, List<DeviceSlot>> _held = [];

    public Task<IReadOnlyList<SiloInventory>> GetInventory()
    {
        var inventory = Silos().ToList();
        var inUse = Held().GroupBy(d => d.Silo).ToDictionary(g => g.Key, g => g.Count());
        return Task.FromResult<IReadOnlyList<SiloInventory>>(inventory
            .Select(s => s with { DevicesInUse = inUse.GetValueOrDefault(s.Silo) })
            .ToList());
    }

    public Task<IReadOnlyList<DeviceSlot>> Allocate(string jobId, IReadOnlyList<int> acceptableCounts)
    {
        _held.Remove(jobId);
        var taken = Held().ToHashSet();
        // Fill the silos with the most free devices first: fewer silos means more replicas linked in memory.
        var free = Silos()
            .Select(s => Enumerable.Range(0, s.Devices).Select(d => new DeviceSlot(s.Silo, d, s.DataPlane)).Where(d => !taken.Contains(d)).ToList())
            .OrderByDescending(devices => devices.Count)
            .SelectMany(devices => devices)
            .ToList();
        foreach (var count in acceptableCounts.OrderDescending())
        {
            if (count > free.Count) continue;
            var slots = free.Take(count).ToList();
            _held[jobId] = slots;
            return Task.FromResult<IReadOnlyList<DeviceSlot>>(slots);
        }
        return Task.FromResult<IReadOnlyList<DeviceSlot>>([]);
    }

    public Task Release(string jobId)
    {
        _held.Remove(jobId);
        return Task.CompletedTask;
    }

    private IEnumerable<DeviceSlot> Held()
    {
        var active = Silos().Select(s => s.Silo).ToHashSet();
        return _held.Values.SelectMany(slots => slots).Where(d => active.Contains(d.Silo));
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
                dataPlane);
        }
    }

    private static int Number(IReadOnlyDictionary<string, string> values, string key) =>
        values.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
}
