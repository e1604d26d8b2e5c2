using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Elastic.Tests;

/// <summary>A private Azurite (installed from npm by infra/local/azurite.sh) on free ports, in memory; disposing kills it.</summary>
public sealed class AzuriteProcess : IAsyncDisposable
{
    /// <summary>Azurite's development account, whose key Azure publishes (no secret).</summary>
    public const string DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private const string Account = "AccountName=devstoreaccount1;AccountKey=" + DevelopmentAccountKey + ";DefaultEndpointsProtocol=http";
    private readonly Process _process;

    private AzuriteProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        ConnectionString = ConnectionStringFor(port);
    }

    /// <summary>The blob port (queue and table follow it).</summary>
    public int Port { get; }

    /// <summary>Blob and table endpoints of this instance.</summary>
    public string ConnectionString { get; }

    /// <summary>The connection string of an Azurite on <paramref name="port"/> (blob; table on port + 2), whether or not one runs there.</summary>
    public static string ConnectionStringFor(int port) => ConnectionStringFor(port, port + 2);

    /// <summary>Blob requests to <paramref name="blobPort"/>, table requests to <paramref name="tablePort"/> (Azurite's, or a proxy's in front of it).</summary>
    public static string ConnectionStringFor(int blobPort, int tablePort) =>
        $"{Account};BlobEndpoint=http://127.0.0.1:{blobPort}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{tablePort}/devstoreaccount1;";

    /// <summary>A port with the two after it free now: where an Azurite can be started later (storage that is down until then).</summary>
    public static int FreePorts() => FreePortRun(3);

    /// <summary>Starts Azurite on free ports; if it dies at start (a port taken meanwhile) it is tried again on others.</summary>
    public static async Task<AzuriteProcess> StartAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            if (await TryStartAsync(FreePortRun(3)) is { } started) return started;
            if (attempt == 3) throw new InvalidOperationException($"Azurite did not start in {attempt} attempts");
        }
    }

    /// <summary>Starts Azurite on <paramref name="port"/> (blob), port + 1 (queue) and port + 2 (table); null if it did not start.</summary>
    private static async Task<AzuriteProcess?> TryStartAsync(int port)
    {
        var install = Process.Start(new ProcessStartInfo("bash") { ArgumentList = { Path.Combine(RepoPaths.Root, "infra", "local", "azurite.sh"), "bin" }, RedirectStandardOutput = true, RedirectStandardError = true })!;
        var azurite = (await install.StandardOutput.ReadToEndAsync()).Trim();
        await install.WaitForExitAsync();
        if (install.ExitCode != 0) throw new InvalidOperationException($"installing Azurite failed: {await install.StandardError.ReadToEndAsync()}");
        var info = new ProcessStartInfo(azurite) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                     "--blobHost", "127.0.0.1", "--blobPort", $"{port}", "--queueHost", "127.0.0.1", "--queuePort", $"{port + 1}",
                     "--tableHost", "127.0.0.1", "--tablePort", $"{port + 2}" })
            info.ArgumentList.Add(arg);
        var started = new AzuriteProcess(Process.Start(info)!, port);
        if (await started.Listening(port, TimeSpan.FromSeconds(60))) return started;
        await started.DisposeAsync();
        return null;
    }

    private async Task<bool> Listening(int port, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        foreach (var p in new[] { port, port + 2 })
        {
            while (true)
            {
                if (_process.HasExited || DateTime.UtcNow > deadline) return false;
                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, p);
                    break;
                }
                catch (SocketException)
                {
                    await Task.Delay(100);
                }
            }
        }
        return true;
    }

    /// <summary>A free run of consecutive ports (Azurite takes blob, queue and table in a row here).</summary>
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

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
