using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Elastic.Client.Http;
using Elastic.Service.Access;

namespace Elastic.Benchmarks.Chaos;

/// <summary>
/// The cluster a chaos run throws faults at: Azurite, silo processes (the built silo host) and the API as its own process
/// (<c>elastic serve</c>). Each silo reaches storage through fault proxies of its own (blob and table) and is dialled by
/// its peers through a fault proxy in front of its data plane; each watches a Scheduled Events stub of its own. A
/// supervisor starts a silo again, on fresh ports, once it has exited and its hold-down has passed, as a cloud replaces a VM.
/// </summary>
public sealed class ChaosCluster : IAsyncDisposable
{
    private const string DevelopmentAccount =
        "AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;DefaultEndpointsProtocol=http";

    private readonly string _root, _folder, _configuration;
    private readonly int _devicesPerSilo, _azuritePort;
    private readonly Action<string> _log;
    private readonly Stopwatch _clock;
    private readonly CancellationTokenSource _stop = new();
    private readonly string _adminKey = ApiKeySecret.New().Text;
    private Process? _api;
    private int _apiPort;
    private Task? _supervisor;

    private ChaosCluster(string root, string folder, int silos, int devicesPerSilo, Action<string> log, Stopwatch clock)
    {
        (_root, _folder, _devicesPerSilo, _log, _clock) = (root, folder, devicesPerSilo, log, clock);
        _configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        _azuritePort = FreePortRun(3);
        Silos = Enumerable.Range(0, silos).Select(i => new SiloSlot(i, new FaultProxy(_azuritePort), new FaultProxy(_azuritePort + 2), new FakeScheduledEvents())).ToList();
    }

    public IReadOnlyList<SiloSlot> Silos { get; }

    /// <summary>Azurite's account, reached directly (not through a silo's proxies): what the run itself reads and damages.</summary>
    public string Storage => ConnectionString(_azuritePort, _azuritePort + 2);

    public ElasticApiClient Client { get; private set; } = null!;

    public static async Task<ChaosCluster> StartAsync(string root, string folder, int silos, int devicesPerSilo, Action<string> log, Stopwatch clock)
    {
        var cluster = new ChaosCluster(root, folder, silos, devicesPerSilo, log, clock);
        try
        {
            await LocalAzurite.Start(Path.Combine(folder, "azurite"), cluster._azuritePort);
            foreach (var silo in cluster.Silos) cluster.Start(silo);
            cluster._apiPort = WorkerProcesses.FreePorts(1)[0];
            cluster.Client = ElasticApiClient.Create(new Uri($"http://127.0.0.1:{cluster._apiPort}"), cluster._adminKey);
            cluster.StartApi();
            cluster._supervisor = cluster.Supervise();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>One silo's place in the cluster, kept across its incarnations: its proxies, its Scheduled Events, its process now.</summary>
    public sealed class SiloSlot(int index, FaultProxy blob, FaultProxy table, FakeScheduledEvents events)
    {
        public int Index { get; } = index;
        public string Name => $"silo-{Index}";
        public FaultProxy Blob { get; } = blob;
        public FaultProxy Table { get; } = table;
        public FakeScheduledEvents Events { get; } = events;
        /// <summary>In front of this incarnation's data plane (a new one per incarnation: the port changes).</summary>
        public FaultProxy? DataPlane { get; set; }
        public Process? Process { get; set; }
        public int Incarnation { get; set; }
        /// <summary>The supervisor leaves an exited silo down until then (on the run's clock).</summary>
        public TimeSpan DownUntil { get; set; }
        public bool Running => Process is { HasExited: false };
        /// <summary>This incarnation's silo-to-silo port: its SiloAddress's endpoint is <c>127.0.0.1:SiloPort</c>.</summary>
        public int SiloPort { get; set; }
    }

    private void Start(SiloSlot silo)
    {
        var ports = WorkerProcesses.FreePorts(3);
        silo.DataPlane = new FaultProxy(ports[2]);
        silo.Events.Clear();
        silo.Incarnation++;
        silo.SiloPort = ports[0];
        var storage = ConnectionString(silo.Blob.Port, silo.Table.Port);
        silo.Process = WorkerProcesses.Start("dotnet", [Path.Combine(_root, "Silo", "bin", _configuration, "net10.0", "Elastic.Silo.dll")], new Dictionary<string, string>
        {
            ["Elastic__Name"] = silo.Name,
            ["Elastic__Clustering"] = "azure",
            ["Elastic__ConnectionString"] = storage,
            ["Elastic__Checkpoints__ConnectionString"] = storage,
            ["Elastic__SiloPort"] = $"{ports[0]}",
            ["Elastic__GatewayPort"] = $"{ports[1]}",
            ["Elastic__DataPlane__Port"] = $"{ports[2]}",
            ["Elastic__DataPlane__AdvertisedPort"] = $"{silo.DataPlane.Port}",
            ["Elastic__Devices__Kind"] = "cpu",
            ["Elastic__Devices__Count"] = $"{_devicesPerSilo}",
            // Silos of one machine share its cores: the planner must not fit layouts to this machine's momentary load.
            ["Elastic__Calibrate"] = "false",
            ["Elastic__Eviction__Watch"] = "true",
            ["Elastic__Eviction__Endpoint"] = silo.Events.Endpoint.ToString(),
            ["Elastic__Eviction__VmName"] = silo.Name,
            ["Elastic__Jobs__CollectiveTimeoutSeconds"] = "15",
            ["Elastic__Jobs__MinDwellSeconds"] = "2",
            ["Elastic__Jobs__JoinSettleSeconds"] = "1",
            ["Elastic__DrainTimeoutSeconds"] = "20",
        }, Path.Combine(_folder, $"{silo.Name}.log"));
        _log($"{_clock.Elapsed.TotalSeconds,7:F1} s  {silo.Name} started (incarnation {silo.Incarnation}, pid {silo.Process.Id})");
    }

    private async Task Supervise()
    {
        while (!_stop.IsCancellationRequested)
        {
            // `elastic serve` exits when it cannot reach the cluster at start (the silos still forming): start it again.
            if (_api is { HasExited: true }) StartApi();
            foreach (var silo in Silos.Where(s => s.Process is { HasExited: true } && _clock.Elapsed >= s.DownUntil))
            {
                // Exited processes are not disposed: the sampler or a fault may be reading them on another thread (the finalizer frees them).
                _log($"{_clock.Elapsed.TotalSeconds,7:F1} s  {silo.Name} exited ({silo.Process!.ExitCode}); starting it again");
                if (silo.DataPlane is { } old) await old.DisposeAsync();
                Start(silo);
            }
            await Task.Delay(250, _stop.Token).ContinueWith(_ => { }, CancellationToken.None);
        }
    }

    /// <summary>Sends a signal to a silo's process (KILL, STOP, CONT, TERM).</summary>
    public void Signal(SiloSlot silo, string signal)
    {
        if (!silo.Running) return;
        using var kill = Process.Start("kill", [$"-{signal}", silo.Process!.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Restarts the API process on its port: clients see it go and come back.</summary>
    public async Task RestartApi()
    {
        var api = _api!;
        api.Kill(entireProcessTree: true);
        // The supervisor starts it again, as it starts an API that exited by itself.
        await api.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    private void StartApi()
    {
        _api = WorkerProcesses.Start("dotnet", [Path.Combine(_root, "Client", "Cli", "bin", _configuration, "net10.0", "elastic.dll"), "serve", "--urls", $"http://127.0.0.1:{_apiPort}"],
            new Dictionary<string, string>
            {
                ["ELASTIC_CLUSTER"] = "azure:" + Storage,
                ["Elastic__Api__BootstrapAdminKey"] = _adminKey,
                // The run submits and watches several jobs at once, many times a second, through one key.
                ["Elastic__Api__RateLimit__RequestsPerMinute"] = "100000",
                ["Elastic__Api__RateLimit__Burst"] = "2000",
            }, Path.Combine(_folder, "api.log"));
    }

    /// <summary>Puts storage (every silo's, or one silo's) into <paramref name="mode"/>.</summary>
    public void SetStorage(ProxyMode mode, int silo = -1, TimeSpan? latency = null)
    {
        foreach (var slot in Silos.Where(s => silo < 0 || s.Index == silo))
        {
            slot.Blob.Set(mode, latency);
            slot.Table.Set(mode, latency);
        }
    }

    /// <summary>The processes of the silos running now, for sampling.</summary>
    public IEnumerable<(string Silo, int Incarnation, int Pid)> RunningSilos() =>
        Silos.Where(s => s.Running).Select(s => (s.Name, s.Incarnation, s.Process!.Id));

    private static string ConnectionString(int blobPort, int tablePort) =>
        $"{DevelopmentAccount};BlobEndpoint=http://127.0.0.1:{blobPort}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{tablePort}/devstoreaccount1;";

    /// <summary>A port with the <paramref name="count"/> - 1 after it free now.</summary>
    private static int FreePortRun(int count)
    {
        for (var attempt = 0; ; attempt++)
        {
            var first = WorkerProcesses.FreePorts(1)[0];
            if (first + count > 65535) continue;
            try
            {
                var held = Enumerable.Range(first, count).Select(p => new TcpListener(IPAddress.Loopback, p)).ToList();
                held.ForEach(l => l.Start());
                held.ForEach(l => l.Stop());
                return first;
            }
            catch (SocketException) when (attempt < 20)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_supervisor is not null) await _supervisor;
        foreach (var silo in Silos)
        {
            if (silo.Process is { } process)
            {
                // A paused silo would not see SIGKILL's effect until continued.
                Signal(silo, "CONT");
                if (!process.HasExited) process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { });
                process.Dispose();
            }
            if (silo.DataPlane is not null) await silo.DataPlane.DisposeAsync();
            await silo.Blob.DisposeAsync();
            await silo.Table.DisposeAsync();
            silo.Events.Dispose();
        }
        if (_api is not null)
        {
            if (!_api.HasExited) _api.Kill(entireProcessTree: true);
            _api.Dispose();
        }
        Client?.Dispose();
        await LocalAzurite.Stop(Path.Combine(_folder, "azurite")).ContinueWith(_ => { });
    }
}
