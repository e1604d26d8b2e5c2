using Elastic.GrainInterfaces;
using Microsoft.Extensions.Logging;

namespace Elastic.Silo.Eviction;

/// <summary>
/// Moves jobs off this silo before it goes: on a graceful stop (SIGTERM, StopSiloAsync) or an eviction notice the
/// capacity grain marks the silo as draining, every job holding one of its devices re-plans without it at its next
/// step boundary (handing the state over first when its replica here is the only holder), and only then does the
/// silo stop. A drain is bounded: past <paramref name="timeout"/> the silo stops anyway and jobs treat it as a failure.
/// </summary>
public sealed partial class SiloDrain(IGrainFactory grains, ILocalSiloDetails silo, TimeSpan timeout, ILogger<SiloDrain> logger)
    : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly SemaphoreSlim _once = new(1, 1);
    private bool _drained;
    private volatile bool _draining;

    /// <summary>A drain has begun: the silo is leaving and takes no new work (its readiness probe fails).</summary>
    public bool Draining => _draining;

    public void Participate(ISiloLifecycle lifecycle) =>
        // The Active stage stops first, while this silo still serves calls, so jobs can still hand state over from here.
        lifecycle.Subscribe(nameof(SiloDrain), ServiceLifecycleStage.Active, _ => Task.CompletedTask, cancellation => DrainAsync("the silo is stopping", false, cancellation));

    /// <summary>Marks this silo as draining and waits until no job holds its devices (or the timeout passes). Later calls return at once.</summary>
    public async Task DrainAsync(string reason, bool preemption, CancellationToken cancellation)
    {
        await _once.WaitAsync(cancellation);
        try
        {
            if (_drained) return;
            _draining = true;
            var capacity = grains.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey);
            LogDraining(logger, silo.SiloAddress, reason);
            await capacity.Drain(silo.SiloAddress, reason, preemption);
            var deadline = DateTime.UtcNow + timeout;
            int jobs;
            while ((jobs = await capacity.JobsOn(silo.SiloAddress)) > 0 && DateTime.UtcNow < deadline && !cancellation.IsCancellationRequested)
                await Task.Delay(50, CancellationToken.None);
            if (jobs > 0) LogDrainTimedOut(logger, silo.SiloAddress, jobs, timeout.TotalSeconds);
            _drained = true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogDrainFailed(logger, silo.SiloAddress, e.Message);
        }
        finally
        {
            _once.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "silo {Silo} draining: {Reason}")]
    private static partial void LogDraining(ILogger logger, SiloAddress silo, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "silo {Silo}: {Jobs} job(s) still hold devices here after {Seconds} s; stopping anyway")]
    private static partial void LogDrainTimedOut(ILogger logger, SiloAddress silo, int jobs, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "silo {Silo}: draining failed: {Reason}")]
    private static partial void LogDrainFailed(ILogger logger, SiloAddress silo, string reason);
}
