using Orleans.Placement;

namespace Elastic.Grains.Placement;

/// <summary>
/// Places coordinators (job, registry and capacity grains) on silos that are not spot capacity when there are any, so
/// that an eviction takes devices away but rarely a coordinator; on a cluster of spot silos only, anywhere.
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking, Alias("Elastic.OnDemandPlacement")]
public sealed class OnDemandPlacement : PlacementStrategy
{
    public static OnDemandPlacement Instance { get; } = new();
}

[AttributeUsage(AttributeTargets.Class)]
public sealed class OnDemandPlacementAttribute() : PlacementAttribute(OnDemandPlacement.Instance);
