using Elastic.Client;
using Elastic.Service.Access;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Elastic.Service;

/// <summary>
/// What every Elastic host process serves besides its API, wired in one place: OpenTelemetry meters (Elastic's own
/// coordinators and data plane, Orleans, ASP.NET Core, the runtime) scraped by Prometheus at /metrics (admin
/// credentials: job ids are tenants' data), traces exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and
/// health endpoints (/health/live: the process answers; /health/ready: the cluster answers).
/// </summary>
public static class ServiceDefaults
{
    /// <summary>The meter and activity source of Elastic's coordinators (Grains/Telemetry) and data plane.</summary>
    public const string Elastic = "Elastic";

    /// <summary>Liveness (the process answers) and readiness (the cluster answers) of every Elastic process that serves HTTP.</summary>
    public const string LivePath = "/health/live", ReadyPath = "/health/ready";

    public static IServiceCollection AddServiceDefaults(this IServiceCollection services)
    {
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("elastic"))
            .WithMetrics(m => m.AddElasticMeters().AddAspNetCoreInstrumentation())
            .WithTracing(t => t.AddSource(Elastic, "Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application").AddAspNetCoreInstrumentation());
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"))) telemetry.UseOtlpExporter();
        services.AddHealthChecks().AddCheck<ClusterHealthCheck>("cluster", tags: [Ready]);
        return services;
    }

    /// <summary>Elastic's own meters, Orleans' and the runtime's, for Prometheus to scrape at <see cref="MetricsPath"/>.</summary>
    public static MeterProviderBuilder AddElasticMeters(this MeterProviderBuilder metrics) =>
        metrics.AddMeter(Elastic, "Microsoft.Orleans").AddRuntimeInstrumentation().AddPrometheusExporter();

    public const string MetricsPath = "/metrics";

    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapPrometheusScrapingEndpoint(MetricsPath).RequireAuthorization(ApiAuthentication.AdminPolicy);
        return app.MapHealthEndpoints();
    }

    /// <summary>Liveness answers without running a check; readiness runs the checks tagged "ready".</summary>
    public static WebApplication MapHealthEndpoints(this WebApplication app)
    {
        app.MapHealthChecks(LivePath, new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks(ReadyPath, new HealthCheckOptions { Predicate = c => c.Tags.Contains(Ready) });
        return app;
    }

    /// <summary>The tag of health checks that readiness runs.</summary>
    public const string Ready = "ready";

    /// <summary>Ready when the cluster answers an inventory call within a few seconds.</summary>
    private sealed class ClusterHealthCheck(ElasticClient client) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellation = default)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            try
            {
                var silos = await client.GetInventoryAsync(timeout.Token);
                return HealthCheckResult.Healthy($"{silos.Count} silo(s), {silos.Sum(s => s.Devices)} device(s)");
            }
            catch (Exception e) when (e is ElasticException or OperationCanceledException)
            {
                return HealthCheckResult.Unhealthy($"the cluster did not answer: {e.Message}");
            }
        }
    }
}
