using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Elastic.Benchmarks.Chaos;

/// <summary>
/// A stand-in for Azure's instance metadata Scheduled Events endpoint on loopback: answers GETs that carry
/// <c>Metadata: true</c> with the events set so far (none at first), in the service's JSON shape, and the compute
/// name query with <see cref="VmName"/>.
/// </summary>
public sealed class FakeScheduledEvents : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private const string NoEvents = """{"DocumentIncarnation":0,"Events":[]}""";
    private volatile string _document = NoEvents;

    public FakeScheduledEvents()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Endpoint = new Uri($"http://127.0.0.1:{port}/metadata/scheduledevents?api-version=2020-07-01");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/metadata/");
        _listener.Start();
        _ = Serve();
    }

    public Uri Endpoint { get; }

    /// <summary>What the metadata service says this VM is called.</summary>
    public string VmName { get; init; } = "aks-gpuspot-41526374-vmss_3";

    /// <summary>Withdraws every event (a VM that was evicted and replaced starts with none).</summary>
    public void Clear() => _document = NoEvents;

    /// <summary>Schedules a Preempt of <paramref name="vm"/> (Azure's notice: at least 30 s before it happens).</summary>
    public void Preempt(string vm) => _document = JsonSerializer.Serialize(new
    {
        DocumentIncarnation = 1,
        Events = new[]
        {
            new
            {
                EventId = Guid.NewGuid().ToString().ToUpperInvariant(),
                EventType = "Preempt",
                ResourceType = "VirtualMachine",
                Resources = new[] { vm },
                EventStatus = "Scheduled",
                NotBefore = DateTimeOffset.UtcNow.AddSeconds(30).ToString("R"),
                Description = "Spot eviction",
                EventSource = "Platform",
                DurationInSeconds = -1,
            },
        },
    });

    private async Task Serve()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            var authorized = context.Request.Headers["Metadata"] == "true";
            context.Response.StatusCode = authorized ? 200 : 400;
            var name = context.Request.Url!.AbsolutePath == "/metadata/instance/compute/name";
            var body = Encoding.UTF8.GetBytes(!authorized ? """{"error":"Bad request. Required metadata header not specified"}""" : name ? VmName : _document);
            context.Response.ContentType = name ? "text/plain" : "application/json";
            await context.Response.OutputStream.WriteAsync(body);
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
    }
}
