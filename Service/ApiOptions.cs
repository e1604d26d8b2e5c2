namespace Elastic.Service;

/// <summary>The HTTP API's settings: the "Elastic:Api" configuration section (see docs/api.md).</summary>
public sealed class ApiOptions
{
    /// <summary>Where Kestrel listens, e.g. http://127.0.0.1:8080 (port 0: any free port).</summary>
    public string Urls { get; set; } = "http://127.0.0.1:0";

    /// <summary>
    /// An admin key that exists before any other (to create the first keys), given by the operator from a secret store;
    /// never stored. Empty: none, every key comes from the key registry.
    /// </summary>
    public string? BootstrapAdminKey { get; set; }

    /// <summary>Where exports asked through the API are written: one folder per tenant and job under it.</summary>
    public string ExportDirectory { get; set; } = "exports";

    public RateLimitOptions RateLimit { get; set; } = new();

    /// <summary>Entra ID / JWT bearer tokens, besides API keys; off unless an authority or a signing key is set.</summary>
    public JwtOptions Jwt { get; set; } = new();
}

/// <summary>Per-tenant request limits: a token bucket of <see cref="Burst"/> requests refilled at <see cref="RequestsPerMinute"/>.</summary>
public sealed class RateLimitOptions
{
    public int RequestsPerMinute { get; set; } = 6000;
    public int Burst { get; set; } = 200;
}

/// <summary>
/// Bearer tokens from an identity provider (Entra ID: <see cref="Authority"/> https://login.microsoftonline.com/{tenant}/v2.0).
/// The token's <see cref="TenantClaim"/> names the Elastic tenant (through <see cref="Tenants"/> when the claim holds the
/// provider's tenant id); <see cref="AdminRole"/> in its roles makes the caller an admin.
/// </summary>
public sealed class JwtOptions
{
    public string? Authority { get; set; }
    public string? Audience { get; set; }
    public string? Issuer { get; set; }

    /// <summary>A symmetric signing key (base64), for identity providers without discovery and for tests; an authority is preferred.</summary>
    public string? SigningKey { get; set; }

    public string TenantClaim { get; set; } = "tid";
    public string AdminRole { get; set; } = "Elastic.Admin";

    /// <summary>Provider tenant id -> Elastic tenant; a claim value not listed is used as the tenant name itself.</summary>
    public Dictionary<string, string> Tenants { get; set; } = [];

    public bool Enabled => !string.IsNullOrWhiteSpace(Authority) || !string.IsNullOrWhiteSpace(SigningKey);
}
