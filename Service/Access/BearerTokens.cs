using System.Security.Claims;
using Elastic.GrainInterfaces;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.Tokens;

namespace Elastic.Service.Access;

/// <summary>
/// JWT bearer tokens (Entra ID or another OpenID provider) mapped to callers: the tenant from the configured claim (through
/// the tenant map), admin when the token's roles hold the admin role. A token without a tenant is refused.
/// </summary>
public static class BearerTokens
{
    public static void Configure(JwtBearerOptions options, JwtOptions jwt)
    {
        options.MapInboundClaims = false;
        if (!string.IsNullOrWhiteSpace(jwt.Authority))
        {
            options.Authority = jwt.Authority;
            options.Audience = jwt.Audience;
        }
        else
        {
            options.TokenValidationParameters = new TokenValidationParameters
            {
                IssuerSigningKey = new SymmetricSecurityKey(Convert.FromBase64String(jwt.SigningKey!)),
                ValidateIssuer = jwt.Issuer is not null,
                ValidIssuer = jwt.Issuer,
                ValidateAudience = jwt.Audience is not null,
                ValidAudience = jwt.Audience,
                ClockSkew = TimeSpan.FromSeconds(30),
            };
        }
        options.Events = new JwtBearerEvents
        {
            OnTokenValidated = context =>
            {
                if (CallerOf(context.Principal!, jwt) is { } caller) context.Principal = caller.ToPrincipal(JwtBearerDefaults.AuthenticationScheme);
                else context.Fail($"the bearer token has no '{jwt.TenantClaim}' claim naming a tenant");
                return Task.CompletedTask;
            },
            OnChallenge = async context =>
            {
                context.HandleResponse();
                await ApiProblems.Unauthorized(context.HttpContext, context.AuthenticateFailure switch
                {
                    null => "an API key or a bearer token is required",
                    SecurityTokenExpiredException => "the bearer token expired",
                    SecurityTokenInvalidSignatureException or SecurityTokenSignatureKeyNotFoundException => "the bearer token's signature is not valid",
                    SecurityTokenInvalidAudienceException => "the bearer token is for another audience",
                    SecurityTokenInvalidIssuerException => "the bearer token is from another issuer",
                    SecurityTokenException => "the bearer token is not valid",
                    var other => other.Message,
                });
            },
            OnForbidden = context => ApiProblems.Forbidden(context.HttpContext, "this needs the admin role"),
        };
    }

    /// <summary>The caller a validated token stands for, or null if it names no valid tenant.</summary>
    public static Caller? CallerOf(ClaimsPrincipal token, JwtOptions jwt)
    {
        if (token.FindFirst(jwt.TenantClaim)?.Value is not { } claimed) return null;
        var tenant = jwt.Tenants.GetValueOrDefault(claimed, claimed);
        if (Tenants.Problem(tenant) is not null) return null;
        var admin = token.FindAll("roles").Concat(token.FindAll("role")).Any(r => r.Value == jwt.AdminRole);
        var subject = token.FindFirst("sub")?.Value ?? token.FindFirst("oid")?.Value ?? "token";
        return new Caller(tenant, admin ? ApiRole.Admin : ApiRole.User, $"token:{subject}");
    }
}
