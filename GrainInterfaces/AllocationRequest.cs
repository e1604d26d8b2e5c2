namespace Elastic.GrainInterfaces;

/// <summary>
/// A job asking for devices: the data-parallel widths it accepts, the devices it would rather keep (they hold its
/// state), and silos it must avoid (their replicas stopped answering; membership may not have noticed yet).
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.AllocationRequest")]
public sealed record AllocationRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] IReadOnlyList<int> Widths,
    [property: Id(2)] IReadOnlyList<DeviceSlot> Prefer,
    [property: Id(3)] IReadOnlyList<SiloAddress> Exclude);
