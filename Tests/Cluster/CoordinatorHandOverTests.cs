using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;

namespace Elastic.Tests.Cluster;

/// <summary>What a coordinator that steps down (its silo stopping) hands over to the one that takes over.</summary>
public sealed class CoordinatorHandOverTests : IDisposable
{
    private readonly string _records = Directory.CreateTempSubdirectory("elastic-handover-").FullName;

    [Fact]
    public async Task A_cancel_accepted_before_the_coordinator_moves_is_carried_out_by_the_one_that_takes_over()
    {
        // Found by the chaos soak: a cancel lived only in the coordinator's memory, so the one that took over trained on.
        // The waiting job looks at capacity rarely, so the cancel is still pending when its coordinator's silo stops.
        var jobs = new JobOptions { CapacityPollInterval = TimeSpan.FromSeconds(30) };
        // Job records on disk: the in-memory store keeps a record on one silo, which may be the one that stops.
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 1, jobs: jobs, silo: silo =>
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Jobs, (sp, _) => new DirectoryGrainStorage(_records, sp.GetRequiredService<Serializer>())));
        var twoDevices = new DeviceSpec { Min = 2, Max = 2 };
        var blocker = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Name = "blocker", Devices = twoDevices });
        await cluster.Until(blocker, s => s.CommittedStep >= 1);
        var waiter = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 20) with { Name = "waiter", Devices = twoDevices });
        await foreach (var progress in cluster.Client.WatchAsync(waiter, Bounded.Within()))
            if (progress.Events.Any(e => e.Kind == JobEventKinds.Waiting)) break;

        Assert.False((await cluster.Client.CancelAsync(waiter)).State.IsTerminal());
        var coordinator = await cluster.SiloOf(cluster.Cluster.Client.GetGrain<IJobGrain>(waiter));
        await cluster.Cluster.StopSiloAsync(cluster.Cluster.Silos.First(s => s.SiloAddress.Equals(coordinator)));

        var status = await cluster.Finish(waiter, within: TimeSpan.FromSeconds(60));
        var events = await cluster.Events(waiter);
        Assert.True(status.State == JobState.Cancelled, $"{status.State}: {status.Error}\n{string.Join("\n", events)}");
        Assert.Contains(events, e => e.Kind == JobEventKinds.CoordinatorMoved);
        Assert.Equal(0, status.CommittedStep);
        await cluster.Client.CancelAsync(blocker);
    }

    public void Dispose() => Directory.Delete(_records, recursive: true);
}
