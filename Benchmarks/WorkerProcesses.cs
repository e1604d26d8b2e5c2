using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Elastic.Security;
using Elastic.Training.Collectives;

namespace Elastic.Benchmarks;

/// <summary>Benchmarks whose ranks run in processes of their own (as silos do): starting them, ports, and the raw loopback TCP baseline.</summary>
internal static class WorkerProcesses
{
    private const string SecretVariable = "ELASTIC_BENCHMARK_GROUP_SECRET";

    /// <summary>Drawn by the benchmark's own process and handed to its workers in their environment: the ranks of one run share it.</summary>
    private static readonly byte[] SecretBytes = Environment.GetEnvironmentVariable(SecretVariable) is { Length: > 0 } hex
        ? Convert.FromHexString(hex)
        : RandomNumberGenerator.GetBytes(GroupSecret.Bytes);

    /// <summary>The data-plane secret of this benchmark run's groups.</summary>
    public static GroupSecret Secret => GroupSecret.From(SecretBytes);

    private const string CertificateVariable = "ELASTIC_BENCHMARK_TLS_PFX";

    /// <summary>A self-signed certificate drawn by the benchmark's process and shared with its workers, for TLS links.</summary>
    private static readonly Lazy<byte[]> Certificate = new(() => Environment.GetEnvironmentVariable(CertificateVariable) is { Length: > 0 } base64
        ? Convert.FromBase64String(base64)
        : ClusterCertificate.SelfSigned("elastic-benchmark").Export(X509ContentType.Pfx));

    /// <summary>TLS for this benchmark run's data planes: every rank presents the same certificate.</summary>
    public static DataPlaneTls Tls => new(new ClusterCertificate(X509CertificateLoader.LoadPkcs12(Certificate.Value, null)));

    /// <summary>Runs this benchmark program as a separate process and returns the last line it printed.</summary>
    public static async Task<string> Run(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(typeof(WorkerProcesses).Assembly.Location);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment[SecretVariable] = Convert.ToHexString(SecretBytes);
        info.Environment[CertificateVariable] = Convert.ToBase64String(Certificate.Value);
        using var process = Process.Start(info)!;
        var (output, errors) = (process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        await process.WaitForExitAsync();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{string.Join(' ', args)} exited with {process.ExitCode}: {await errors}");
        return (await output).Trim().Split('\n')[^1];
    }

    /// <summary>
    /// Runs one process per rank (each its own arguments) and returns each one's last line; when any fails, says what every
    /// failed rank printed (the first to die is usually not the first whose failure is awaited).
    /// </summary>
    public static async Task<string[]> RunRanks(IEnumerable<string[]> ranks)
    {
        var all = Task.WhenAll(ranks.Select(args => Run(args)));
        try
        {
            return await all;
        }
        catch (InvalidOperationException) when (all.Exception is { InnerExceptions.Count: > 1 } every)
        {
            throw new InvalidOperationException(string.Join("\n---\n", every.InnerExceptions.Select(e => e.Message)), every);
        }
    }

    /// <summary>Raw loopback TCP between two processes: median bytes/s of one connection streaming <paramref name="size"/> bytes per round.</summary>
    public static async Task<double> RawTcp(int size)
    {
        var port = FreePorts(1)[0];
        var receiver = Run("raw-tcp-worker", "receive", $"{size}", $"{port}");
        await Run("raw-tcp-worker", "send", $"{size}", $"{port}");
        return double.Parse(await receiver, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Starts a program with <paramref name="environment"/> added to this process's, its output and errors appended to
    /// <paramref name="log"/> (or discarded) so that a full pipe never blocks it.
    /// </summary>
    public static Process Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment, string? log = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (key, value) in environment) info.Environment[key] = value;
        var process = Process.Start(info)!;
        var writer = log is null ? null : new StreamWriter(log, append: true) { AutoFlush = true };
        DataReceivedEventHandler append = (_, e) =>
        {
            if (e.Data is null || writer is null) return;
            lock (writer) writer.WriteLine(e.Data);
        };
        process.OutputDataReceived += append;
        process.ErrorDataReceived += append;
        if (writer is not null)
        {
            process.EnableRaisingEvents = true;
            process.Exited += (_, _) => Task.Delay(1000).ContinueWith(_ =>
            {
                lock (writer) writer.Dispose();
            });
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}
