using System.Security.Claims;
using Elastic.GrainInterfaces;

namespace Elastic.Service.Access;

/// <summary>Who is calling, as authentication established it: a tenant, a role, and the credential (key id or token subject).</summary>
public sealed record Caller(string Tenant, ApiRole Role, string Credential)
{
    public const string TenantClaim = "elastic/tenant", RoleClaim = "elastic/role", CredentialClaim = "elastic/credential";

    public bool IsAdmin => Role == ApiRole.Admin;

    /// <summary>Whether this caller may see (and act on) a job of <paramref name="tenant"/>. Otherwise the job does not exist for it.</summary>
    public bool Sees(string tenant) => IsAdmin || tenant == Tenant;

    public ClaimsPrincipal ToPrincipal(string scheme) => new(new ClaimsIdentity(
        [new Claim(TenantClaim, Tenant), new Claim(RoleClaim, Role.ToString()), new Claim(CredentialClaim, Credential)], scheme));

    /// <summary>The caller behind an authenticated request (every API endpoint requires one).</summary>
    public static Caller Of(ClaimsPrincipal user) => Find(user) ?? throw new InvalidOperationException("the request was not authenticated");

    public static Caller? Find(ClaimsPrincipal user) =>
        user.FindFirst(TenantClaim)?.Value is { } tenant && Enum.TryParse<ApiRole>(user.FindFirst(RoleClaim)?.Value, out var role)
            ? new Caller(tenant, role, user.FindFirst(CredentialClaim)?.Value ?? "")
            : null;
}
