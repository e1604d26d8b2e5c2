namespace Elastic.GrainInterfaces;

/// <summary>
/// What one silo offers: its devices (and how many are in use), its data-plane endpoint, whether it is spot (evictable) capacity,
/// what it measured of its devices and links (JSON; empty when it did not), and what carries its tensors to other processes
/// ("NCCL 2.27.3 (libnccl.so.2)", or frames over the data plane and why).
/// </summary>
[GenerateSerializer, Immutable, Alias("Elastic.SiloInventory")]
public sealed record SiloInventory(
    [property: Id(0)] SiloAddress Silo,
    [property: Id(1)] string Name,
    [property: Id(2)] string DeviceKind,
    [property: Id(3)] int Devices,
    [property: Id(4)] int DevicesInUse,
    [property: Id(5)] long DeviceMemoryMiB,
    [property: Id(6)] int ThreadsPerDevice,
    [property: Id(7)] string DataPlane,
    [property: Id(8)] string DeviceModel = "cpu",
    [property: Id(9)] bool Spot = false,
    [property: Id(10)] string Calibration = "",
    [property: Id(11)] string DeviceTransport = "");
