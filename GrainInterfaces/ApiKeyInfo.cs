namespace Elastic.GrainInterfaces;

/// <summary>What an API key may do: a tenant's user sees and changes that tenant's jobs; an admin sees every job and manages keys.</summary>
public enum ApiRole
{
    User,
    Admin,
}

/// <summary>An API key as the service shows it: everything but the secret, which is kept only as its hash.</summary>
[GenerateSerializer, Immutable, Alias("Elastic.ApiKeyInfo")]
public sealed record ApiKeyInfo(
    [property: Id(0)] string Id,
    [property: Id(1)] string Tenant,
    [property: Id(2)] ApiRole Role,
    [property: Id(3)] string Name,
    [property: Id(4)] DateTimeOffset CreatedAt,
    [property: Id(5)] DateTimeOffset? ExpiresAt,
    [property: Id(6)] DateTimeOffset? RevokedAt = null)
{
    /// <summary>Whether the key may be used at <paramref name="now"/>.</summary>
    public bool ValidAt(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || now < ExpiresAt);
}
