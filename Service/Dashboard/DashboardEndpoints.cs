using System.Collections.Frozen;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Elastic.Service.Dashboard;

/// <summary>
/// The dashboard at /dashboard/: three static files (a page, its script and its style) embedded in this assembly. They hold no
/// data and need no credential; the page signs in with an API key and reads everything through the API.
/// </summary>
public static class DashboardEndpoints
{
    private static readonly FrozenDictionary<string, (byte[] Content, string Type)> Files = Load();

    // Scripts and styles from this origin only (no inline script): a job name is text, never markup.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static void MapDashboard(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/", () => TypedResults.Redirect("/dashboard/")).ExcludeFromDescription();
        routes.MapGet("/dashboard/{file?}", (string? file, HttpContext context) =>
        {
            // Routing matches /dashboard and /dashboard/ alike; the page's relative paths need the slash.
            if (file is null && !context.Request.Path.Value!.EndsWith('/')) return Results.Redirect("/dashboard/");
            if (!Files.TryGetValue(file ?? "index.html", out var found)) return Results.NotFound();
            context.Response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
            context.Response.Headers.XContentTypeOptions = "nosniff";
            context.Response.Headers.CacheControl = "no-cache";
            return Results.Bytes(found.Content, found.Type);
        }).ExcludeFromDescription();
    }

    private static FrozenDictionary<string, (byte[], string)> Load()
    {
        var assembly = typeof(DashboardEndpoints).Assembly;
        var files = new Dictionary<string, (byte[], string)>();
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith("dashboard/", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var type = Path.GetExtension(name) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                _ => "application/octet-stream",
            };
            files[name["dashboard/".Length..]] = (copy.ToArray(), type);
        }
        return files.ToFrozenDictionary();
    }
}
