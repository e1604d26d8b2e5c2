using System.Net.Http.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Elastic.Silo.Eviction;

/// <summary>
/// Azure's instance metadata service as an eviction watcher asks it: this VM's name, and a Preempt event naming a VM.
/// Every request carries <c>Metadata: true</c>; a request that fails is logged and answered with null, never thrown.
/// </summary>
public sealed partial class ScheduledEventsClient(HttpClient http, EvictionOptions options, ILogger logger)
{
    /// <summary>A Preempt event whose Resources name <paramref name="vm"/>, or null.</summary>
    public async Task<PreemptNotice?> PreemptNoticeAsync(string vm, CancellationToken cancellation)
    {
        var document = await GetAsync(options.Endpoint, (content, c) => content.ReadFromJsonAsync<ScheduledEvents>(c), cancellation);
        return document?.Events?.FirstOrDefault(e => e.EventType == "Preempt" && e.Resources?.Contains(vm, StringComparer.OrdinalIgnoreCase) == true) is { } e
            ? new PreemptNotice(e.EventId, e.NotBefore)
            : null;
    }

    /// <summary>This VM's name as Scheduled Events lists it (in a Kubernetes pod the machine name is the pod's, not the node's), or null.</summary>
    public async Task<string?> VmNameAsync(CancellationToken cancellation) =>
        await GetAsync(options.VmNameEndpoint, async (content, c) => (string?)await content.ReadAsStringAsync(c), cancellation) is { Length: > 0 } name
            ? name.Trim()
            : null;

    private async Task<T?> GetAsync<T>(Uri endpoint, Func<HttpContent, CancellationToken, Task<T?>> read, CancellationToken cancellation)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, endpoint);
            request.Headers.Add("Metadata", "true");
            using var response = await http.SendAsync(request, cancellation);
            response.EnsureSuccessStatusCode();
            return await read(response.Content, cancellation);
        }
        catch (Exception e) when (!cancellation.IsCancellationRequested)
        {
            LogFailed(logger, endpoint, e.Message);
            return default;
        }
        catch (OperationCanceledException)
        {
            return default;
        }
    }

    public sealed record PreemptNotice(string EventId, string? NotBefore);

    private sealed record ScheduledEvents([property: JsonPropertyName("Events")] IReadOnlyList<ScheduledEvent>? Events);

    private sealed record ScheduledEvent(
        [property: JsonPropertyName("EventId")] string EventId,
        [property: JsonPropertyName("EventType")] string EventType,
        [property: JsonPropertyName("Resources")] IReadOnlyList<string>? Resources,
        [property: JsonPropertyName("NotBefore")] string? NotBefore);

    [LoggerMessage(Level = LogLevel.Debug, Message = "the metadata service at {Endpoint} did not answer: {Reason}")]
    private static partial void LogFailed(ILogger logger, Uri endpoint, string reason);
}
