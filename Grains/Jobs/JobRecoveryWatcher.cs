using Elastic.GrainInterfaces;
using Microsoft.Extensions.Logging;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Wakes the jobs that hold devices whenever a silo is declared dead, so that a job whose coordinator died with that silo
/// gets a new one at once (its grain activates elsewhere and adopts the surviving replicas) instead of waiting for a user
/// to look at it. Only the oldest active silo does it; a job that was already running elsewhere just answers.
/// </summary>
public sealed partial class JobRecoveryWatcher(IClusterMembershipService membership, IGrainFactory grains, ILocalSiloDetails silo, ILogger<JobRecoveryWatcher> logger)
    : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _watching = Task.CompletedTask;

    public void Participate(ISiloLifecycle lifecycle) => lifecycle.Subscribe(nameof(JobRecoveryWatcher), ServiceLifecycleStage.Active,
        _ =>
        {
            _watching = Task.Run(Watch);
            return Task.CompletedTask;
        },
        async _ =>
        {
            await _stopping.CancelAsync();
            await _watching;
        });

    private async Task Watch()
    {
        var dead = new HashSet<SiloAddress>();
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(_stopping.Token))
            {
                var newlyDead = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead && dead.Add(m.SiloAddress)).ToList();
                var oldest = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).MinBy(m => m.SiloAddress.Generation);
                if (newlyDead.Count == 0 || oldest?.SiloAddress.Equals(silo.SiloAddress) != true) continue;
                await WakeJobs(string.Join(", ", newlyDead.Select(m => m.SiloAddress)));
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    private async Task WakeJobs(string lost)
    {
        try
        {
            var jobs = await ClusterCallRetry.Pipeline.ExecuteAsync(async _ => await grains.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey).HoldingJobs());
            LogWaking(logger, lost, jobs.Count);
            await Task.WhenAll(jobs.Select(id => grains.GetGrain<IJobGrain>(id).GetStatus()));
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            LogWakeFailed(logger, lost, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "silo(s) {Lost} declared dead: waking {Jobs} job(s) that hold devices")]
    private static partial void LogWaking(ILogger logger, string lost, int jobs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "silo(s) {Lost} declared dead: waking jobs failed: {Reason}")]
    private static partial void LogWakeFailed(ILogger logger, string lost, string reason);
}
