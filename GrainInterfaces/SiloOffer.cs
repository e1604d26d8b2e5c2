namespace Elastic.GrainInterfaces;

/// <summary>Devices of one silo a job could hold now (its own there that are not leaving, plus the free ones), with what they are: what the planner plans on.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.SiloOffer")]
public sealed record SiloOffer(
    [property: Id(0)] SiloAddress Silo,
    [property: Id(1)] int Devices,
    [property: Id(2)] string DeviceModel,
    [property: Id(3)] long DeviceMemoryMiB,
    [property: Id(4)] string Calibration = "");
