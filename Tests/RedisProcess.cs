using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Elastic.Tests;

/// <summary>
/// A private redis-server (Debian's, installed by infra/local/debian-packages.sh) on a free port, in memory only (no
/// snapshots, no append-only file); disposing kills it.
/// </summary>
public sealed class RedisProcess : IAsyncDisposable
{
    private readonly Process _process;

    private RedisProcess(Process process, int port) => (_process, Port) = (process, port);

    public int Port { get; }

    /// <summary>The StackExchange.Redis configuration that reaches it.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    public static async Task<RedisProcess> StartAsync()
    {
        var port = Cluster.ProcessCluster.FreePorts(1)[0];
        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--port", $"{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes" })
            info.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"redis-server could not be started ({e.Message}): run infra/local/debian-packages.sh install", e);
        }
        var redis = new RedisProcess(process, port);
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        for (var wait = Stopwatch.StartNew(); wait.Elapsed < TimeSpan.FromSeconds(30) && !process.HasExited; await Task.Delay(100))
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return redis;
            }
            catch (SocketException)
            {
            }
        }
        await redis.DisposeAsync();
        throw new InvalidOperationException($"redis-server did not listen on port {port} within 30 s");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
        }
        _process.Dispose();
    }
}
