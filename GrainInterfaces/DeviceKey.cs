namespace Elastic.GrainInterfaces;

/// <summary>
/// Keys of device-placed grains name the silo that owns their device (<c>job/g3/r1/on/SILO[/s0]</c>), so that every call
/// finds the unit where it runs, from any caller, even after a directory entry was lost with another silo: the placement
/// director puts a (re)activation only on that silo, where the existing activation is found.
/// </summary>
public static class DeviceKey
{
    private const string On = "/on/";

    public static string Of(string unit, SiloAddress silo) => $"{unit}{On}{silo.ToParsableString()}";

    /// <summary>The silo named in <paramref name="key"/>, or null when it names none.</summary>
    public static SiloAddress? SiloOf(string key)
    {
        var at = key.LastIndexOf(On, StringComparison.Ordinal);
        if (at < 0) return null;
        var silo = key[(at + On.Length)..];
        var end = silo.IndexOf('/', StringComparison.Ordinal);
        return SiloAddress.FromParsableString(end < 0 ? silo : silo[..end]);
    }
}
