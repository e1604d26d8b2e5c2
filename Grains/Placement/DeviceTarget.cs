namespace Elastic.Grains.Placement;

/// <summary>Names the silo for the activations that the calls made inside the scope create (carried in the request context).</summary>
public readonly struct DeviceTarget : IDisposable
{
    internal const string Key = "elastic.device-silo";

    private DeviceTarget(SiloAddress silo) => RequestContext.Set(Key, silo.ToParsableString());

    public static DeviceTarget On(SiloAddress silo) => new(silo);

    public void Dispose() => RequestContext.Remove(Key);
}
