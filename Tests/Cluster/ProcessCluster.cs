using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Elastic.Client;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A real multi-process cluster: an Azurite process (Azure Table membership) and silo processes started from
/// the built Silo project, each with its own ports and virtual devices. Disposing kills everything it started.
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    private const string Account = "AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;DefaultEndpointsProtocol=http";
    private readonly List<Process> _processes = [];
    private readonly string _clusterId = $"test-{Guid.NewGuid():N}"[..13];
    private string _connection = "";

    public List<Process> Silos { get; } = [];
    public ClusterAddress Address => new("azure", _connection, _clusterId);

    public static async Task<ProcessCluster> StartAsync(int silos, int devicesPerSilo)
    {
        var cluster = new ProcessCluster();
        try
        {
            await cluster.StartAzurite();
            for (var i = 0; i < silos; i++) cluster.StartSilo(i, devicesPerSilo);
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
        var install = Run("bash", [Path.Combine(RepoPaths.Root, "infra", "local", "azurite.sh"), "bin"]);
        var azurite = (await install.StandardOutput.ReadToEndAsync()).Trim();
        await install.WaitForExitAsync();
        if (install.ExitCode != 0) throw new InvalidOperationException($"installing Azurite failed: {await install.StandardError.ReadToEndAsync()}");
        var port = FreePortRun(3);
        _connection = $"{Account};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{port + 2}/devstoreaccount1;";
        _processes.Add(Run(azurite, ["--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
            "--blobHost", "127.0.0.1", "--blobPort", $"{port}", "--queueHost", "127.0.0.1", "--queuePort", $"{port + 1}",
            "--tableHost", "127.0.0.1", "--tablePort", $"{port + 2}"]));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port + 2);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    public Process StartSilo(int index, int devices)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        var silo = Path.Combine(RepoPaths.Root, "Silo", "bin", configuration, "net10.0", "Elastic.Silo.dll");
        var ports = FreePorts(2);
        var process = Run("dotnet", [silo], new Dictionary<string, string>
        {
            ["Elastic__Name"] = $"silo-{index}",
            ["Elastic__ClusterId"] = _clusterId,
            ["Elastic__Clustering"] = "azure",
            ["Elastic__ConnectionString"] = _connection,
            ["Elastic__SiloPort"] = $"{ports[0]}",
            ["Elastic__GatewayPort"] = $"{ports[1]}",
            ["Elastic__Devices__Kind"] = "cpu",
            ["Elastic__Devices__Count"] = $"{devices}",
        });
        _processes.Add(process);
        Silos.Add(process);
        return process;
    }

    public Task<ElasticConnection> ConnectAsync() => ElasticConnection.ConnectAsync(Address, TimeSpan.FromSeconds(60));

    private static Process Run(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        var process = Process.Start(info)!;
        if (environment is not null)
        {
            // Drain the silo's logs so that a full pipe never blocks it.
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }
        return process;
    }

    private static int[] FreePorts(int count)
    {
        var sockets = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        sockets.ForEach(s => s.Start());
        var ports = sockets.Select(s => ((IPEndPoint)s.LocalEndpoint).Port).ToArray();
        sockets.ForEach(s => s.Stop());
        return ports;
    }

    /// <summary>A free run of <paramref name="count"/> consecutive ports (Azurite takes blob, queue and table in a row here).</summary>
    private static int FreePortRun(int count)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var first = Random.Shared.Next(20_000, 60_000);
            var listeners = new List<TcpListener>();
            try
            {
                for (var p = first; p < first + count; p++)
                {
                    var listener = new TcpListener(IPAddress.Loopback, p);
                    listener.Start();
                    listeners.Add(listener);
                }
                return first;
            }
            catch (SocketException)
            {
            }
            finally
            {
                listeners.ForEach(l => l.Stop());
            }
        }
        throw new InvalidOperationException($"no run of {count} free ports found");
    }

    public ValueTask DisposeAsync()
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
        return ValueTask.CompletedTask;
    }
}
