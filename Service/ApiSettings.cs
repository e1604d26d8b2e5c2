using System.Globalization;
using Elastic.GrainInterfaces;
using Elastic.Service.Access;
using Microsoft.Extensions.Configuration;

namespace Elastic.Service;

/// <summary>Reads the API's settings (<c>Elastic:Api:*</c>) for a silo that serves it and for <c>elastic serve</c> alike.</summary>
public static class ApiSettings
{
    /// <summary>The API's options from <c>Elastic:Api</c>, or null when <c>Urls</c> is not set (no API); each bad value is added to <paramref name="errors"/>, never a secret.</summary>
    public static ApiOptions? Read(IConfigurationSection api, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(api["Urls"])) return null;
        int Positive(string key, int fallback)
        {
            var text = api[key];
            if (string.IsNullOrEmpty(text)) return fallback;
            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 1) return value;
            errors.Add($"Elastic:Api:{key} = {text}: must be a positive integer");
            return fallback;
        }
        var bootstrap = api["BootstrapAdminKey"];
        // Never repeat a secret back, even a malformed one.
        if (!string.IsNullOrEmpty(bootstrap) && ApiKeySecret.Parse(bootstrap) is null)
            errors.Add("Elastic:Api:BootstrapAdminKey: not an API key (ek_<12 hex digits>_<43 base64url characters>; `elastic keys new` makes one)");
        var jwt = api.GetSection("Jwt");
        var options = new ApiOptions
        {
            Urls = api["Urls"]!,
            BootstrapAdminKey = bootstrap,
            ExportDirectory = api["ExportDirectory"] is { Length: > 0 } exports ? exports : "exports",
            RateLimit = new RateLimitOptions { RequestsPerMinute = Positive("RateLimit:RequestsPerMinute", 6000), Burst = Positive("RateLimit:Burst", 200) },
            Jwt = new JwtOptions
            {
                Authority = jwt["Authority"],
                Audience = jwt["Audience"],
                Issuer = jwt["Issuer"],
                SigningKey = jwt["SigningKey"],
                TenantClaim = jwt["TenantClaim"] is { Length: > 0 } claim ? claim : "tid",
                AdminRole = jwt["AdminRole"] is { Length: > 0 } role ? role : "Elastic.Admin",
                Tenants = jwt.GetSection("Tenants").GetChildren().ToDictionary(c => c.Key, c => c.Value ?? ""),
            },
        };
        foreach (var (id, tenant) in options.Jwt.Tenants)
            if (Tenants.Problem(tenant) is { } problem) errors.Add($"Elastic:Api:Jwt:Tenants:{id} = {tenant}: {problem}");
        return options;
    }
}
