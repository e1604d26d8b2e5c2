using Elastic.GrainInterfaces;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Serialization;

namespace Elastic.Client;

/// <summary>A connection to a cluster (an Orleans client host) and the <see cref="ElasticClient"/> over it.</summary>
public sealed class ElasticConnection : IAsyncDisposable
{
    private readonly IHost _host;

    private ElasticConnection(IHost host)
    {
        _host = host;
        Client = new ElasticClient(host.Services.GetRequiredService<IClusterClient>());
    }

    public ElasticClient Client { get; }

    /// <summary>The Orleans client underneath, for management calls the SDK does not wrap.</summary>
    public IClusterClient Cluster => _host.Services.GetRequiredService<IClusterClient>();

    /// <summary>Connects, retrying for up to <paramref name="timeout"/> (default 15 s) while no gateway answers.</summary>
    /// <param name="tls">The client's certificate, for a cluster whose silos require TLS (<see cref="ClusterTls"/>).</param>
    /// <exception cref="ClusterUnavailableException">No gateway answered in time.</exception>
    public static async Task<ElasticConnection> ConnectAsync(ClusterAddress address, TimeSpan? timeout = null, CancellationToken cancellation = default,
        Security.ClusterCertificate? tls = null)
    {
        var deadline = DateTimeOffset.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (address.ClusterId, address.ServiceId));
            // A gateway that died is dropped within seconds (default: a minute), so calls move to the silos that remain.
            client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(2));
            switch (address.Kind)
            {
                case "azure": client.UseAzureStorageClustering(o => o.TableServiceClient = AzureTables.Connect(address.Value)); break;
                case "redis": client.UseRedisClustering(address.Value); break;
                default: client.UseStaticClustering(address.Gateways().ToArray()); break;
            }
            client.UseConnectionRetryFilter(async (_, ct) =>
            {
                if (DateTimeOffset.UtcNow > deadline) return false;
                await Task.Delay(500, ct);
                return true;
            });
            client.Services.AddSerializer(s => s.AddElasticJobTypes());
            if (tls is not null) client.UseTls(o => ClusterTls.Configure(o, tls));
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            host.Dispose();
            throw new ClusterUnavailableException($"cannot reach the cluster at {address}: {e.Message}", e);
        }
        return new ElasticConnection(host);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _host.Dispose();
        }
    }
}
