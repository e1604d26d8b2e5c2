using Elastic.GrainInterfaces;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace Elastic.Service.Access;

/// <summary>Authentication and authorization in one place: API keys always, JWT bearer tokens when configured.</summary>
public static class ApiAuthentication
{
    public const string Scheme = "Elastic";
    public const string AdminPolicy = "admin";

    public static IServiceCollection AddApiAuthentication(this IServiceCollection services, ApiOptions options)
    {
        services.AddSingleton(new BootstrapAdminKey(options));
        var authentication = services.AddAuthentication(Scheme)
            // A presented key goes to the key handler; any other bearer token to the JWT handler, when there is one.
            .AddPolicyScheme(Scheme, "API key or bearer token", o => o.ForwardDefaultSelector = context =>
                options.Jwt.Enabled && ApiKeyAuthenticationHandler.Presented(context.Request) is null && HasBearer(context.Request)
                    ? JwtBearerDefaults.AuthenticationScheme
                    : ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        if (options.Jwt.Enabled) authentication.AddJwtBearer(o => BearerTokens.Configure(o, options.Jwt));
        services.AddAuthorizationBuilder().AddPolicy(AdminPolicy, p => p.RequireClaim(Caller.RoleClaim, nameof(ApiRole.Admin)));
        return services;
    }

    private static bool HasBearer(HttpRequest request) =>
        request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);
}
