using Elastic.GrainInterfaces;
using Elastic.Grains.Scheduling;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A job that waits for devices keeps its claim for as long as it keeps asking, however long that is: found by the chaos
/// suite, where a queued job failed ("Sequence contains no matching element") once it had waited past the waiting expiry.
/// </summary>
public sealed class WaitingJobTests
{
    [Fact]
    public async Task A_job_waiting_longer_than_the_waiting_expiry_keeps_its_place_and_runs_when_devices_free_up()
    {
        var waiter = TestSpecs.Tiny(steps: 6, global: 16, micro: 2, seed: 31) with { Name = "waiter", Devices = new DeviceSpec { Min = 2, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(waiter);
        await using var cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 2, scheduling: new SchedulingOptions { WaitingExpiry = TimeSpan.FromSeconds(1) });
        var blocker = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Name = "blocker", Devices = new DeviceSpec { Min = 2, Max = 2 } });
        await cluster.Until(blocker, s => s.CommittedStep >= 1);

        var waiting = await cluster.Client.SubmitAsync(waiter);
        // Several reviews past the expiry while every device is taken.
        await Task.Delay(TimeSpan.FromSeconds(4));
        var meanwhile = await cluster.Client.GetStatusAsync(waiting);
        Assert.False(meanwhile.State.IsTerminal(), $"the waiting job ended: {meanwhile.State} {meanwhile.Error}");
        Assert.Equal(0, meanwhile.CommittedStep);

        await cluster.Client.CancelAsync(blocker);
        var status = await cluster.Finish(waiting);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(reference, status.FinalParameterDigest);
    }
}
