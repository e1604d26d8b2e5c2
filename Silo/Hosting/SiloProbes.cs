using Elastic.Service;
using Elastic.Silo.Eviction;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Elastic.Silo.Hosting;

/// <summary>
/// What Kubernetes asks a silo pod, on a port of its own (<c>Elastic:Probes:Port</c>): liveness (the process answers),
/// readiness (this silo is an active cluster member and not draining), metrics for Prometheus (Orleans', Elastic's and
/// the runtime's meters; the port is cluster-internal, no Service exposes it) and <see cref="DrainPath"/>, the pod's preStop
/// hook: it drains the silo (every job holding its devices re-plans without it at its next step boundary) and answers
/// when the drain is over, so a pod deletion, a node drain or a rolling update moves jobs off before SIGTERM stops the
/// process. Plain HTTP without credentials: nothing here changes a job, and a drain loses no work.
/// </summary>
public sealed class SiloProbes : IAsyncDisposable
{
    public const string DrainPath = "/drain";

    private readonly WebApplication _app;

    private SiloProbes(WebApplication app) => _app = app;

    /// <param name="silo">The silo's services: its drain, its address and the cluster's membership.</param>
    public static async Task<SiloProbes> StartAsync(int port, IServiceProvider silo, CancellationToken cancellation = default)
    {
        var drain = silo.GetRequiredService<SiloDrain>();
        var local = silo.GetRequiredService<ILocalSiloDetails>();
        var membership = silo.GetRequiredService<IClusterMembershipService>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://0.0.0.0:{port}");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService("elastic-silo")).WithMetrics(m => m.AddElasticMeters());
        builder.Services.AddHealthChecks().AddCheck("member", () =>
            drain.Draining ? HealthCheckResult.Unhealthy("draining")
            : membership.CurrentSnapshot.GetSiloStatus(local.SiloAddress) is var status && status == SiloStatus.Active ? HealthCheckResult.Healthy("active")
            : HealthCheckResult.Unhealthy($"membership status {status}"), tags: [ServiceDefaults.Ready]);
        var app = builder.Build();
        app.MapHealthEndpoints();
        app.MapPrometheusScrapingEndpoint(ServiceDefaults.MetricsPath);
        // The drain is bounded by Elastic:DrainTimeoutSeconds and runs to its end even if the caller goes away.
        app.MapGet(DrainPath, async () =>
        {
            await drain.DrainAsync("the pod is stopping (preStop)", preemption: false, CancellationToken.None);
            return Results.Text("drained\n");
        });
        await app.StartAsync(cancellation);
        return new SiloProbes(app);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
