using System.Net.Http.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Elastic.Silo.Eviction;

/// <summary>
/// Polls Azure Scheduled Events (the instance metadata service, every second) for a Preempt event that names this VM.
/// On notice the silo drains at once (jobs re-plan without it at their next step boundary, well before NotBefore, and
/// take its state first when it is the only holder) and then stops gracefully, leaving the cluster. Counted by jobs as
/// a preemption, apart from failures.
/// </summary>
public sealed partial class EvictionWatcher(EvictionOptions options, SiloDrain drain, IHostApplicationLifetime lifetime, ILogger<EvictionWatcher> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stopping)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        while (!stopping.IsCancellationRequested)
        {
            if (await PreemptNotice(http, stopping) is { } notice)
            {
                LogNotice(logger, options.VmName, notice.EventId, notice.NotBefore);
                await drain.DrainAsync($"eviction notice {notice.EventId}, not before {notice.NotBefore}", preemption: true, stopping);
                lifetime.StopApplication();
                return;
            }
            await Task.Delay(options.PollInterval, stopping).ContinueWith(_ => { }, CancellationToken.None);
        }
    }

    private async Task<ScheduledEvent?> PreemptNotice(HttpClient http, CancellationToken stopping)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, options.Endpoint);
            request.Headers.Add("Metadata", "true");
            using var response = await http.SendAsync(request, stopping);
            response.EnsureSuccessStatusCode();
            var document = await response.Content.ReadFromJsonAsync<ScheduledEvents>(stopping);
            return document?.Events?.FirstOrDefault(e => e.EventType == "Preempt" && e.Resources?.Contains(options.VmName, StringComparer.OrdinalIgnoreCase) == true);
        }
        catch (Exception e) when (!stopping.IsCancellationRequested)
        {
            LogPollFailed(logger, options.Endpoint, e.Message);
            return null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private sealed record ScheduledEvents([property: JsonPropertyName("Events")] IReadOnlyList<ScheduledEvent>? Events);

    private sealed record ScheduledEvent(
        [property: JsonPropertyName("EventId")] string EventId,
        [property: JsonPropertyName("EventType")] string EventType,
        [property: JsonPropertyName("Resources")] IReadOnlyList<string>? Resources,
        [property: JsonPropertyName("NotBefore")] string? NotBefore);

    [LoggerMessage(Level = LogLevel.Warning, Message = "eviction notice for {Vm}: event {EventId}, not before {NotBefore}; draining and leaving the cluster")]
    private static partial void LogNotice(ILogger logger, string vm, string eventId, string? notBefore);

    [LoggerMessage(Level = LogLevel.Debug, Message = "scheduled events at {Endpoint} did not answer: {Reason}")]
    private static partial void LogPollFailed(ILogger logger, Uri endpoint, string reason);
}
