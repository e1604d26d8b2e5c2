namespace Elastic.Silo.Eviction;

/// <summary>Where and how a silo watches for its VM's eviction (Azure Scheduled Events from the instance metadata service).</summary>
public sealed record EvictionOptions
{
    /// <summary>Off by default: only VMs that have the metadata service (Azure) should poll it.</summary>
    public bool Watch { get; init; }

    public Uri Endpoint { get; init; } = new("http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01");

    /// <summary>This VM's name as Scheduled Events lists it in an event's Resources; default: the machine name.</summary>
    public string VmName { get; init; } = Environment.MachineName;

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);
}
