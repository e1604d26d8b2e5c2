using Azure.Data.Tables;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A job whose coordinator is lost while it waits for devices (so it holds none, and nothing else looks at it) comes back
/// by itself: its reminder, in a durable table (Azure Table storage on Azurite), wakes it on another silo, and it trains
/// to the end without any client call to it.
/// </summary>
public sealed class CoordinatorWakeTests : IDisposable
{
    private readonly string _records = Directory.CreateTempSubdirectory("elastic-wake-").FullName;

    [Fact]
    public async Task A_job_whose_coordinator_was_lost_while_it_waited_for_devices_comes_back_by_itself()
    {
        await using var azurite = await AzuriteProcess.StartAsync();
        var jobs = new JobOptions
        {
            CollectiveTimeout = TimeSpan.FromSeconds(20),
            CapacityPollInterval = TimeSpan.FromMilliseconds(200),
            MinDwell = TimeSpan.FromSeconds(1),
            JoinSettle = TimeSpan.FromMilliseconds(300),
            WakePeriod = TimeSpan.FromSeconds(3),
        };
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 1, jobs: jobs, silo: silo =>
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Jobs, (sp, _) => new DirectoryGrainStorage(_records, sp.GetRequiredService<Serializer>()));
            silo.UseAzureTableReminderService(o => o.TableServiceClient = new TableServiceClient(azurite.ConnectionString));
        });
        var twoDevices = new DeviceSpec { Min = 2, Max = 2 };
        var blocker = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Name = "blocker", Devices = twoDevices });
        await cluster.Until(blocker, s => s.CommittedStep >= 1);
        var spec = TestSpecs.Tiny(steps: 20) with { Name = "waiter", Devices = twoDevices };
        var waiter = await cluster.Client.SubmitAsync(spec);
        await foreach (var progress in cluster.Client.WatchAsync(waiter, Bounded.Within()))
            if (progress.Events.Any(e => e.Kind == "waiting")) break;

        // Lose the waiter's coordinator with its silo, then free devices. No call goes to the waiter from here on.
        var coordinator = await cluster.SiloOf(cluster.Cluster.Client.GetGrain<IJobGrain>(waiter));
        await cluster.Cluster.KillSiloAsync(cluster.Cluster.Silos.First(s => s.SiloAddress.Equals(coordinator)));
        await cluster.Client.CancelAsync(blocker);
        var capacity = cluster.Cluster.Client.GetGrain<ICapacityGrain>(ICapacityGrain.DefaultKey);
        var back = System.Diagnostics.Stopwatch.StartNew();
        while (!(await capacity.HoldingJobs()).Contains(waiter))
        {
            Assert.True(back.Elapsed < TimeSpan.FromSeconds(90), "the waiting job did not come back by itself within 90 s");
            await Task.Delay(200);
        }

        var status = await cluster.Finish(waiter);
        var events = await cluster.Events(waiter);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.Contains(events, e => e.Kind == "coordinator-recovered");
        Assert.Equal(await TestSpecs.ReferenceDigest(spec), status.FinalParameterDigest);
    }

    public void Dispose() => Directory.Delete(_records, recursive: true);
}
