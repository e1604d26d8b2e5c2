namespace Elastic.GrainInterfaces;

/// <summary>What an allocation gave a job (empty: nothing fits yet), and its share as the scheduler sees it.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.Allocation")]
public sealed record Allocation(
    [property: Id(0)] IReadOnlyList<DeviceSlot> Devices,
    [property: Id(1)] JobShare Share);
