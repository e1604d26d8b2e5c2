using Elastic.GrainInterfaces;

namespace Elastic.Grains.Capacity;

/// <summary>
/// Devices grouped into blocks of tp on one silo: what one replica's tensor-parallel group needs (its collectives
/// stay on memory links). Blocks come in the order their last device appears among the candidates, so preferred
/// devices (a replica's own, which hold its state) come back as the same blocks, in the same order.
/// </summary>
public static class TensorBlocks
{
    public static IReadOnlyList<IReadOnlyList<DeviceSlot>> Of(IEnumerable<DeviceSlot> candidates, int tensorParallel)
    {
        var blocks = new List<IReadOnlyList<DeviceSlot>>();
        var pending = new Dictionary<SiloAddress, List<DeviceSlot>>();
        foreach (var device in candidates)
        {
            if (!pending.TryGetValue(device.Silo, out var open)) pending[device.Silo] = open = [];
            open.Add(device);
            if (open.Count < tensorParallel) continue;
            blocks.Add(open);
            pending[device.Silo] = [];
        }
        return blocks;
    }
}
