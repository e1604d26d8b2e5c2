using System.Text.Encodings.Web;
using Elastic.GrainInterfaces;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Elastic.Service.Access;

/// <summary>
/// Authenticates "Authorization: Bearer ek_..." (or "X-Api-Key: ek_...") against the key registry: an unknown, revoked or
/// expired key fails with a reason that names the key by its id only. The bootstrap admin key is compared in memory.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IGrainFactory grains,
    BootstrapAdminKey bootstrap,
    TimeProvider time) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    private const string Header = "X-Api-Key";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Presented(Request) is not { } text) return AuthenticateResult.NoResult();
        if (ApiKeySecret.Parse(text) is not { } key) return AuthenticateResult.Fail("the API key is malformed: expected ek_<12 hex digits>_<43 base64url characters>");
        if (bootstrap.Matches(key))
            return Success(new Caller(Tenants.Default, ApiRole.Admin, "bootstrap"));
        var info = await grains.GetGrain<IApiKeyRegistryGrain>(IApiKeyRegistryGrain.DefaultKey).Verify(key.Id, key.Hash());
        if (info is null) return AuthenticateResult.Fail($"API key {key} is not known");
        if (info.RevokedAt is { } revoked) return AuthenticateResult.Fail($"API key {key} was revoked at {revoked:u}");
        if (!info.ValidAt(time.GetUtcNow())) return AuthenticateResult.Fail($"API key {key} expired at {info.ExpiresAt:u}");
        return Success(new Caller(info.Tenant, info.Role, info.Id));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        await ApiProblems.Unauthorized(Context, result.Failure?.Message ?? "an API key is required: Authorization: Bearer ek_...");
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        ApiProblems.Forbidden(Context, "this needs an admin key");

    /// <summary>The API key a request presents, if it presents one (a bearer token that is not a key is left to the JWT handler).</summary>
    public static string? Presented(HttpRequest request)
    {
        if (request.Headers[Header].ToString() is { Length: > 0 } header) return header.Trim();
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization[7..].Trim() is var token && ApiKeySecret.Looks(token)
            ? token
            : null;
    }

    private AuthenticateResult Success(Caller caller) => AuthenticateResult.Success(new AuthenticationTicket(caller.ToPrincipal(SchemeName), SchemeName));
}
