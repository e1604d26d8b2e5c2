using Elastic.GrainInterfaces;
using Orleans.Runtime.Placement;

namespace Elastic.Units.Placement;

/// <summary>Puts a device-placed grain exactly on the silo its key names (<see cref="DeviceKey"/>), and fails when that silo is not active.</summary>
public sealed class DevicePlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silo = DeviceKey.SiloOf(target.GrainIdentity.Key.ToString()!)
            ?? throw new OrleansException($"{target.GrainIdentity} is device-placed but its key names no silo (use DeviceKey.Of)");
        if (!context.GetCompatibleSilos(target).Contains(silo))
            throw new SiloUnavailableException($"cannot place {target.GrainIdentity}: its device silo {silo} is not an active member of the cluster");
        return Task.FromResult(silo);
    }
}
