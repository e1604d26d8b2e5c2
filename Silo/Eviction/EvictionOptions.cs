namespace Elastic.Silo.Eviction;

/// <summary>Where and how a silo watches for its VM's eviction (Azure Scheduled Events from the instance metadata service).</summary>
public sealed record EvictionOptions
{
    /// <summary>Off by default: only VMs that have the metadata service (Azure) should poll it.</summary>
    public bool Watch { get; init; }

    public Uri Endpoint { get; init; } = new("http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01");

    /// <summary>This VM's name as Scheduled Events lists it in an event's Resources; null: the name the metadata service
    /// gives for this VM (<see cref="VmNameEndpoint"/>; in a Kubernetes pod the machine name is the pod's, not the node's),
    /// else the machine name.</summary>
    public string? VmName { get; init; }

    /// <summary>Where the metadata service says this VM's name, next to <see cref="Endpoint"/>.</summary>
    public Uri VmNameEndpoint => new(Endpoint, "/metadata/instance/compute/name?api-version=2021-02-01&format=text");

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);
}
