using Elastic.GrainInterfaces;
using Elastic.Planning;
using Elastic.Planning.Hardware;

namespace Elastic.Grains.Capacity;

/// <summary>Silos as the planner sees them: nodes grouped by device count and model, each with the profile its device model names.</summary>
public static class InventoryShape
{
    /// <summary>Every device of every silo of <paramref name="silos"/>.</summary>
    public static ClusterShape Of(IEnumerable<SiloInventory> silos) =>
        Of(silos.Select(s => new SiloOffer(s.Silo, s.Devices, s.DeviceModel, s.DeviceMemoryMiB, s.Calibration)).ToList());

    /// <summary>
    /// The offered devices, those on <paramref name="exclude"/>'s silos left out, grouped by count, device model and memory; a device
    /// model no published profile names is planned as the CPU profile, with the memory its silo reports. Where the group's silos
    /// measured their devices, the slowest one's figures replace the profile's assumptions (a step waits for its slowest rank).
    /// </summary>
    public static ClusterShape Of(IReadOnlyList<SiloOffer> offer, IReadOnlyCollection<SiloAddress>? exclude = null)
    {
        var cpu = HardwareProfiles.Named("cpu")!;
        return new ClusterShape(offer.Where(o => o.Devices > 0 && exclude?.Contains(o.Silo) != true)
            .GroupBy(o => (o.Devices, o.DeviceModel, o.DeviceMemoryMiB))
            .Select(g =>
            {
                var profile = HardwareProfiles.ForDeviceModel(g.Key.DeviceModel) ?? cpu;
                if (g.Key.DeviceMemoryMiB > 0) profile = profile with { MemoryGiB = g.Key.DeviceMemoryMiB / 1024.0 };
                var slowest = g.Select(o => DeviceMeasurement.FromJson(o.Calibration)).OfType<DeviceMeasurement>()
                    .MinBy(m => m.MatmulTflops.GetValueOrDefault("fp32", double.MaxValue));
                return new NodeGroup(g.Count(), g.Key.Devices, slowest?.Apply(profile) ?? profile);
            })
            .OrderByDescending(g => g.Devices).ToList());
    }
}
