using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Elastic.Benchmarks.Chaos;
using Elastic.Client;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A real multi-process cluster: an Azurite process (Azure Table membership and job state, or with <c>redis</c> clustering a
/// redis-server process for both) and silo processes started from the built Silo project, each with its own ports and
/// virtual devices, checkpointing to the same Azurite. Disposing kills everything it started.
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    private readonly List<Process> _processes = [];
    private readonly string _clusterId = $"test-{Guid.NewGuid():N}"[..13];
    private AzuriteProcess? _azurite;
    private RedisProcess? _redis;
    private string _connection = "";

    public List<Process> Silos { get; } = [];

    /// <summary>Each silo process's silo-to-silo port, by index: how a SiloAddress names its process.</summary>
    public List<int> SiloPorts { get; } = [];
    public ClusterAddress Address => _redis is null ? new("azure", _connection, _clusterId) : new("redis", _redis.Configuration, _clusterId);

    /// <summary>The Azurite account that holds membership, job state and (container "checkpoints") checkpoints.</summary>
    public string Storage => _connection;

    /// <param name="checkpointBlobPort">Where silo i sends its checkpoint blobs, given Azurite's blob port (default: Azurite itself).</param>
    /// <param name="clustering"><c>azure</c> (membership, job state and reminders in Azurite's tables) or <c>redis</c> (in a redis-server).</param>
    /// <param name="proxiedTables">The silos reach Azurite's tables through <see cref="Tables"/>, a fault proxy (the test's client reaches them directly).</param>
    public static async Task<ProcessCluster> StartAsync(int silos, int devicesPerSilo, Func<int, int, int>? checkpointBlobPort = null, string clustering = "azure",
        bool proxiedTables = false)
    {
        var cluster = new ProcessCluster();
        try
        {
            await cluster.StartAzurite();
            if (clustering == "redis") cluster._redis = await RedisProcess.StartAsync();
            if (proxiedTables) cluster.Tables = new FaultProxy(cluster.BlobPort + 2);
            for (var i = 0; i < silos; i++)
                cluster.StartSilo(i, devicesPerSilo, checkpointBlobPort is null ? null : AzuriteProcess.ConnectionStringFor(checkpointBlobPort(i, cluster.BlobPort)));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task StartAzurite()
    {
        _azurite = await AzuriteProcess.StartAsync();
        _connection = _azurite.ConnectionString;
    }

    /// <summary>Azurite's blob port.</summary>
    public int BlobPort => _azurite!.Port;

    /// <summary>With proxiedTables, the proxy in front of Azurite's tables that the silos go through.</summary>
    public FaultProxy? Tables { get; private set; }

    /// <param name="checkpoints">This silo's checkpoint storage connection string (default: the cluster's Azurite).</param>
    public Process StartSilo(int index, int devices, string? checkpoints = null)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        var silo = Path.Combine(RepoPaths.Root, "Silo", "bin", configuration, "net10.0", "Elastic.Silo.dll");
        var ports = FreePorts(2);
        var process = Run("dotnet", [silo], new Dictionary<string, string>
        {
            ["Elastic__Name"] = $"silo-{index}",
            ["Elastic__ClusterId"] = _clusterId,
            ["Elastic__Clustering"] = Address.Kind,
            ["Elastic__ConnectionString"] = Tables is null ? Address.Value : AzuriteProcess.ConnectionStringFor(BlobPort, Tables.Port),
            ["Elastic__Checkpoints__ConnectionString"] = checkpoints ?? _connection,
            ["Elastic__SiloPort"] = $"{ports[0]}",
            ["Elastic__GatewayPort"] = $"{ports[1]}",
            ["Elastic__Devices__Kind"] = "cpu",
            // Silos of one machine share its cores: measured, the planner would fit layouts to this machine's load, not to the test.
            ["Elastic__Calibrate"] = "false",
            ["Elastic__Devices__Count"] = $"{devices}",
        });
        _processes.Add(process);
        Silos.Add(process);
        SiloPorts.Add(ports[0]);
        return process;
    }

    public Task<ElasticConnection> ConnectAsync() => ElasticConnection.ConnectAsync(Address, TimeSpan.FromSeconds(60));

    private static Process Run(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (key, value) in environment) info.Environment[key] = value;
        var process = Process.Start(info)!;
        // Drain the silo's logs so that a full pipe never blocks it.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public static int[] FreePorts(int count)
    {
        var sockets = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        sockets.ForEach(s => s.Start());
        var ports = sockets.Select(s => ((IPEndPoint)s.LocalEndpoint).Port).ToArray();
        sockets.ForEach(s => s.Stop());
        return ports;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            try
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
            catch (InvalidOperationException)
            {
            }
            process.Dispose();
        }
        _processes.Clear();
        if (Tables is not null) await Tables.DisposeAsync();
        if (_azurite is not null) await _azurite.DisposeAsync();
        if (_redis is not null) await _redis.DisposeAsync();
    }
}
