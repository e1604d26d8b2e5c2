using Elastic.Grains.Devices;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Elastic.Grains.Placement;

/// <summary>Picks a random compatible silo that does not advertise itself as spot capacity, or any compatible silo when all do.</summary>
public sealed class OnDemandPlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        var onDemand = silos.Where(s => metadata.GetSiloMetadata(s).Metadata.GetValueOrDefault(SiloMetadataKeys.Spot) != "true").ToArray();
        var choices = onDemand.Length > 0 ? onDemand : silos;
        return Task.FromResult(choices[Random.Shared.Next(choices.Length)]);
    }
}
