namespace Elastic.GrainInterfaces;

/// <summary>
/// A job asking for devices: the device counts it accepts (dp x tp), the devices it would rather keep (they hold its
/// state), silos it must avoid (their replicas stopped answering; membership may not have noticed yet), and how many
/// devices of one silo each replica needs (its tensor-parallel group).
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.AllocationRequest")]
public sealed record AllocationRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] IReadOnlyList<int> Widths,
    [property: Id(2)] IReadOnlyList<DeviceSlot> Prefer,
    [property: Id(3)] IReadOnlyList<SiloAddress> Exclude,
    [property: Id(4)] int TensorParallel = 1);
