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
        var events = new ScheduledEventsClient(http, options, logger);
        var vm = options.VmName ?? await VmName(events, stopping);
        LogWatching(logger, options.Endpoint, vm);
        while (!stopping.IsCancellationRequested)
        {
            if (await events.PreemptNoticeAsync(vm, stopping) is { } notice)
            {
                LogNotice(logger, vm, notice.EventId, notice.NotBefore);
                await drain.DrainAsync($"eviction notice {notice.EventId}, not before {notice.NotBefore}", preemption: true, stopping);
                lifetime.StopApplication();
                return;
            }
            await Pause(stopping);
        }
    }

    /// <summary>The metadata service's name for this VM, asked a few times; else the machine name.</summary>
    private async Task<string> VmName(ScheduledEventsClient events, CancellationToken stopping)
    {
        for (var attempt = 0; attempt < 3 && !stopping.IsCancellationRequested; attempt++)
        {
            if (await events.VmNameAsync(stopping) is { } name) return name;
            await Pause(stopping);
        }
        return Environment.MachineName;
    }

    private Task Pause(CancellationToken stopping) => Task.Delay(options.PollInterval, stopping).ContinueWith(_ => { }, CancellationToken.None);

    [LoggerMessage(Level = LogLevel.Information, Message = "watching scheduled events at {Endpoint} for a preemption of VM {Vm}")]
    private static partial void LogWatching(ILogger logger, Uri endpoint, string vm);

    [LoggerMessage(Level = LogLevel.Warning, Message = "eviction notice for {Vm}: event {EventId}, not before {NotBefore}; draining and leaving the cluster")]
    private static partial void LogNotice(ILogger logger, string vm, string eventId, string? notBefore);
}
