using Orleans.Placement;

namespace Elastic.Units.Placement;

/// <summary>Places a grain on the silo that owns its device, named in its key (see <see cref="DeviceKey"/>). Never anywhere else.</summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking, Alias("Elastic.DevicePlacement")]
public sealed class DevicePlacement : PlacementStrategy
{
    public static DevicePlacement Instance { get; } = new();
}

[AttributeUsage(AttributeTargets.Class)]
public sealed class DevicePlacementAttribute() : PlacementAttribute(DevicePlacement.Instance);
