using Orleans.Runtime.Placement;

namespace Elastic.Grains.Placement;

/// <summary>Puts a device-placed grain exactly on the silo its caller named, and fails when that silo is not active.</summary>
public sealed class DevicePlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        if (!target.RequestContextData.TryGetValue(DeviceTarget.Key, out var value) || value is not string text)
            throw new OrleansException($"{target.GrainIdentity} is device-placed but was called without a target silo (use DeviceTarget.On)");
        var silo = SiloAddress.FromParsableString(text);
        if (!context.GetCompatibleSilos(target).Contains(silo))
            throw new SiloUnavailableException($"cannot place {target.GrainIdentity}: its device silo {silo} is not an active member of the cluster");
        return Task.FromResult(silo);
    }
}
