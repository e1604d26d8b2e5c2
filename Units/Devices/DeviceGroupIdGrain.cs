using Elastic.GrainInterfaces;
using Elastic.Training.Collectives.Nccl;
using Elastic.Units.Placement;

namespace Elastic.Units.Devices;

/// <summary>Draws NCCL ids on the silo its key names; it keeps nothing, so it goes as soon as it has answered.</summary>
[DevicePlacement]
public sealed class DeviceGroupIdGrain(NcclSupport nccl) : Grain, IDeviceGroupIdGrain
{
    public Task<DrawnDeviceGroupIds> Draw(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        DeactivateOnIdle();
        var ids = nccl.Available ? Enumerable.Range(0, count).Select(_ => nccl.NewId()!).ToList() : [];
        return Task.FromResult(new DrawnDeviceGroupIds(ids, nccl.Available, nccl.Describe()));
    }
}
