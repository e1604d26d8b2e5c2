namespace Elastic.GrainInterfaces;

/// <summary>One device of one silo, and the data-plane endpoint of that silo.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.DeviceSlot")]
public sealed record DeviceSlot(
    [property: Id(0)] SiloAddress Silo,
    [property: Id(1)] int Device,
    [property: Id(2)] string DataPlane,
    [property: Id(3)] string Model = "cpu")
{
    public override string ToString() => $"{Silo}/device {Device}";
}
