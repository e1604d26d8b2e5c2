using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace Elastic.Silo.Hosting;

/// <summary>
/// Several real silos in this process (development membership hosted by the first), each with its own
/// virtual CPU devices and data plane: what `elastic train --devices N` runs a job on.
/// </summary>
public sealed class EmbeddedCluster : IAsyncDisposable
{
    private readonly List<IHost> _silos = [];

    private EmbeddedCluster() { }

    public List<IPEndPoint> Gateways { get; } = [];

    /// <param name="devicesPerSilo">One entry per silo: how many virtual devices it offers.</param>
    /// <param name="checkpoints">The checkpoint directory all silos share.</param>
    public static async Task<EmbeddedCluster> StartAsync(IReadOnlyList<int> devicesPerSilo, string checkpoints = "checkpoints", CancellationToken cancellation = default)
    {
        var cluster = new EmbeddedCluster();
        try
        {
            var ports = FreePorts(2 * devicesPerSilo.Count);
            var primary = new IPEndPoint(IPAddress.Loopback, ports[0]);
            for (var i = 0; i < devicesPerSilo.Count; i++)
            {
                var (siloPort, gatewayPort, name, devices) = (ports[2 * i], ports[2 * i + 1], $"silo-{i}", devicesPerSilo[i]);
                var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
                builder.Logging.SetMinimumLevel(LogLevel.Critical);
                builder.UseOrleans(silo =>
                {
                    silo.UseDevelopmentClustering(primary);
                    silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = ("elastic", "elastic"));
                    silo.Configure<SiloOptions>(o => o.SiloName = name);
                    silo.ConfigureEndpoints(IPAddress.Loopback, siloPort, gatewayPort);
                    silo.AddElastic(new ElasticSiloOptions { Devices = new() { Count = devices }, CheckpointDirectory = checkpoints }, name);
                });
                var host = builder.Build();
                cluster._silos.Add(host);
                await host.StartAsync(cancellation);
                cluster.Gateways.Add(new IPEndPoint(IPAddress.Loopback, gatewayPort));
            }
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Spreads devices over silos of at most <paramref name="perSilo"/> devices each.</summary>
    public static IReadOnlyList<int> Layout(int devices, int perSilo = 2) =>
        Enumerable.Range(0, (devices + perSilo - 1) / perSilo).Select(i => Math.Min(perSilo, devices - i * perSilo)).ToList();

    private static int[] FreePorts(int count)
    {
        var sockets = Enumerable.Range(0, count).Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)).ToList();
        try
        {
            foreach (var socket in sockets) socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            return sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port).ToArray();
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Stop the non-primary silos first: the primary hosts the membership table.
        for (var i = _silos.Count - 1; i >= 0; i--)
        {
            try
            {
                await _silos[i].StopAsync(TimeSpan.FromSeconds(10));
            }
            finally
            {
                _silos[i].Dispose();
            }
        }
        _silos.Clear();
    }
}
