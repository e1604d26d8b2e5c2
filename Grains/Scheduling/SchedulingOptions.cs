namespace Elastic.Grains.Scheduling;

/// <summary>How the cluster shares its devices between tenants (<c>Elastic:Scheduling:*</c>, the same on every silo).</summary>
public sealed record SchedulingOptions
{
    /// <summary>The most devices each listed tenant's jobs may hold together (<c>Elastic:Scheduling:TenantDevices:TENANT</c>).</summary>
    public IReadOnlyDictionary<string, int> TenantDevices { get; init; } = new Dictionary<string, int>();

    /// <summary>The quota of a tenant not listed (<c>Elastic:Scheduling:DefaultTenantDevices</c>); null: no quota.</summary>
    public int? DefaultTenantDevices { get; init; }

    /// <summary>A queued job that has not asked for devices for this long is taken as gone (its coordinator was lost; a new one queues again).</summary>
    public TimeSpan WaitingExpiry { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>The most devices <paramref name="tenant"/>'s jobs may hold together; null: as many as there are.</summary>
    public int? QuotaOf(string tenant) => TenantDevices.TryGetValue(tenant, out var devices) ? devices : DefaultTenantDevices;

    /// <summary>Where a tenant's quota is configured, for messages.</summary>
    public string QuotaSetting(string tenant) =>
        TenantDevices.ContainsKey(tenant) ? $"Elastic:Scheduling:TenantDevices:{tenant}" : "Elastic:Scheduling:DefaultTenantDevices";
}
