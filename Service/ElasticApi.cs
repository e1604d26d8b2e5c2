using Elastic.Client;
using Elastic.Client.Http;
using Elastic.Service.Access;
using Elastic.Service.Dashboard;
using Elastic.Service.Endpoints;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Elastic.Service;

/// <summary>The HTTP API composed: its services, then its middleware and endpoints, in the order they must run.</summary>
public static class ElasticApi
{
    /// <param name="grains">The cluster the API fronts: a silo's own grain factory, or an Orleans client's.</param>
    public static IServiceCollection AddElasticApi(this IServiceCollection services, IGrainFactory grains, ApiOptions options)
    {
        services.AddSingleton(grains);
        services.AddSingleton(new ElasticClient(grains));
        services.AddSingleton(Microsoft.Extensions.Options.Options.Create(options));
        services.TryAddSingleton(TimeProvider.System);
        services.Configure<JsonOptions>(o => ApiJson.Configure(o.SerializerOptions));
        services.AddServiceDefaults();
        services.AddProblemDetails();
        services.AddApiAuthentication(options);
        services.AddTenantRateLimits(options.RateLimit);
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Elastic";
            document.Info.Description = "Elastic distributed training: submit, watch and steer training jobs. Authenticate with Authorization: Bearer <API key or token>.";
            // Clients know where they reached it; a listening port in the document would change with every start.
            document.Servers?.Clear();
            return Task.CompletedTask;
        }));
        return services;
    }

    public static WebApplication UseElasticApi(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();
        app.MapDefaultEndpoints();
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapJobEndpoints();
        app.MapKeyEndpoints();
        app.MapClusterEndpoints();
        app.MapDashboard();
        return app;
    }
}
