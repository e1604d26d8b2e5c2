using System.Net;
using System.Net.Sockets;
using Elastic.Grains.Jobs;
using Elastic.Security;
using Elastic.Silo.Eviction;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Serialization;
using Orleans.Storage;

namespace Elastic.Silo.Hosting;

/// <summary>
/// Several real silos in this process (development membership hosted by the first), each with its own
/// devices (virtual CPU devices, or CUDA devices, see <see cref="InProcessDevices"/>) and data plane: what `elastic train --devices N` runs a job on. Grain state (jobs, capacity)
/// is kept in files next to the checkpoints, so it outlives any silo that leaves.
/// </summary>
public sealed class EmbeddedCluster : IAsyncDisposable
{
    private readonly List<(IHost Host, int SiloPort)> _silos = [];
    private readonly IPEndPoint _primary;
    private readonly string _checkpoints;
    private readonly Lock _gate = new();
    private int _started;
    private int _nextDevice;

    private readonly AdmissionOptions _admission;
    private readonly InProcessDevices _devices;
    private readonly ClusterCertificate? _clusterTls;

    private EmbeddedCluster(IPEndPoint primary, string checkpoints, AdmissionOptions admission, InProcessDevices devices, ClusterCertificate? clusterTls) =>
        (_primary, _checkpoints, _admission, _devices, _clusterTls) = (primary, checkpoints, admission, devices, clusterTls);

    /// <summary>The first silo's gateway: it never leaves (it hosts membership), so clients that use only it ride out any churn.</summary>
    public IPEndPoint Gateway { get; private set; } = null!;

    /// <summary>The first silo's grain factory: what the HTTP API of an embedded cluster fronts (that silo never leaves).</summary>
    public IGrainFactory Grains { get; private set; } = null!;

    /// <summary>Where grain state is kept: beside the checkpoints, outside the blobs a checkpoint store lists.</summary>
    private string GrainState => Path.Combine(_checkpoints, "grain-state");

    /// <param name="devicesPerSilo">One entry per silo: how many virtual devices it offers.</param>
    /// <param name="checkpoints">The checkpoint directory all silos share.</param>
    /// <param name="admission">Where submitted jobs may read data and write models (default: bundled corpora only, no model files).</param>
    /// <param name="keepState">Keep the jobs an earlier cluster on the same directory left (to resume one); otherwise start with none.</param>
    /// <param name="deviceKind"><c>cpu</c> (virtual devices) or <c>cuda</c> (device g on GPU g mod the GPU count).</param>
    /// <param name="clusterTls">Orleans traffic (between the silos and from clients to the gateways) inside mutual TLS with this certificate.</param>
    public static async Task<EmbeddedCluster> StartAsync(IReadOnlyList<int> devicesPerSilo, string checkpoints = "checkpoints",
        CancellationToken cancellation = default, AdmissionOptions? admission = null, bool keepState = false, string deviceKind = "cpu",
        ClusterCertificate? clusterTls = null)
    {
        var cluster = new EmbeddedCluster(new IPEndPoint(IPAddress.Loopback, FreePorts(1)[0]), checkpoints, admission ?? new AdmissionOptions(),
            new InProcessDevices(deviceKind, devicesPerSilo.Sum()), clusterTls);
        if (!keepState && Directory.Exists(cluster.GrainState)) Directory.Delete(cluster.GrainState, recursive: true);
        try
        {
            foreach (var devices in devicesPerSilo) await cluster.AddSiloAsync(devices, cancellation);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts one more silo with <paramref name="devices"/> virtual devices (the first one hosts membership); returns its address.</summary>
    /// <param name="spot">The silo is spot capacity: coordinators prefer the others.</param>
    public async Task<SiloAddress> AddSiloAsync(int devices, CancellationToken cancellation = default, bool spot = false)
    {
        var ports = FreePorts(2);
        var (siloPort, gatewayPort) = _started == 0 ? (_primary.Port, ports[1]) : (ports[0], ports[1]);
        string name;
        int firstDevice;
        lock (_gate) (name, firstDevice, _nextDevice) = ($"silo-{_started++}", _nextDevice, _nextDevice + devices);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        builder.UseOrleans(silo =>
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Jobs, (sp, _) =>
                new DirectoryGrainStorage(GrainState, sp.GetRequiredService<Serializer>()));
            silo.UseDevelopmentClustering(_primary);
            silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = ("elastic", "elastic"));
            silo.Configure<SiloOptions>(o => o.SiloName = name);
            silo.ConfigureEndpoints(IPAddress.Loopback, siloPort, gatewayPort);
            silo.AddElastic(new ElasticSiloOptions
            {
                Devices = _devices.For(firstDevice, devices),
                Spot = spot,
                CheckpointDirectory = _checkpoints,
                Admission = _admission,
                ClusterTls = _clusterTls,
                // Its silos stand for separate nodes but share this machine's cores: measuring them would plan for the simulation.
                Calibrate = false,
                // Short demos: grow onto joining silos within seconds.
                Jobs = new JobOptions { MinDwell = TimeSpan.FromSeconds(2), JoinSettle = TimeSpan.FromMilliseconds(500) },
            }, name);
        });
        var host = builder.Build();
        lock (_gate) _silos.Add((host, siloPort));
        await host.StartAsync(cancellation);
        if (_silos.Count == 1) (Gateway, Grains) = (new IPEndPoint(IPAddress.Loopback, gatewayPort), host.Services.GetRequiredService<IGrainFactory>());
        return host.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress;
    }

    /// <summary>Whether <paramref name="silo"/> is one of this cluster's silos other than the first (which hosts membership).</summary>
    public bool MayStop(SiloAddress silo)
    {
        lock (_gate) return silo.Endpoint.Port != _primary.Port && _silos.Any(s => s.SiloPort == silo.Endpoint.Port);
    }

    /// <summary>Stops the silo listening on <paramref name="silo"/>'s port gracefully: it drains (its jobs move off it) and leaves.</summary>
    public Task StopSiloAsync(SiloAddress silo) => Remove(silo, host => host.StopAsync(TimeSpan.FromSeconds(30)));

    /// <summary>
    /// Stops the silo at once, without draining or leaving politely (the nearest this process gets to kill -9): its
    /// sockets close when it is disposed, and the others declare it dead by their probes.
    /// </summary>
    public Task KillSiloAsync(SiloAddress silo) => Remove(silo, host => host.StopAsync(new CancellationToken(canceled: true)));

    /// <summary>Drains the silo as an eviction notice would (its jobs move off it at their next step boundary); it stays up.</summary>
    public Task DrainSiloAsync(SiloAddress silo, string reason, CancellationToken cancellation = default) =>
        HostOf(silo).Services.GetRequiredService<SiloDrain>().DrainAsync(reason, preemption: true, cancellation);

    private IHost HostOf(SiloAddress silo)
    {
        lock (_gate)
            return _silos.FirstOrDefault(s => s.SiloPort == silo.Endpoint.Port).Host ?? throw new ArgumentException($"{silo} is not a silo of this cluster", nameof(silo));
    }

    private async Task Remove(SiloAddress silo, Func<IHost, Task> stop)
    {
        IHost host;
        lock (_gate)
        {
            var index = _silos.FindIndex(s => s.SiloPort == silo.Endpoint.Port);
            if (index < 0 || silo.Endpoint.Port == _primary.Port)
                throw new ArgumentException($"{silo} is not a silo of this cluster that may stop (the first hosts membership)", nameof(silo));
            host = _silos[index].Host;
            _silos.RemoveAt(index);
        }
        try
        {
            await stop(host);
        }
        catch (OperationCanceledException)
        {
            // A kill: the stop was cancelled before it began.
        }
        finally
        {
            host.Dispose();
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
                await _silos[i].Host.StopAsync(TimeSpan.FromSeconds(10));
            }
            finally
            {
                _silos[i].Host.Dispose();
            }
        }
        _silos.Clear();
    }
}
