using Elastic.Benchmarks.Chaos;
using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

/// <summary>
/// The table that holds the cluster's membership (and its job records and reminders) stops answering while a job trains
/// across two silo processes. Without the table no silo can be declared dead, so nothing re-plans: training goes on, the
/// job shows only what the table took and catches up when it returns, and ends with the fixed-layout bits.
/// </summary>
public sealed class MembershipOutageTests
{
    [Fact]
    public async Task Training_goes_on_through_a_membership_table_outage_with_no_silo_declared_dead_and_ends_with_the_fixed_layout_bits()
    {
        var spec = TestSpecs.Tiny(steps: 600, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 2, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await ProcessCluster.StartAsync(silos: 2, devicesPerSilo: 1, proxiedTables: true);
        await using var connection = await cluster.ConnectAsync();
        await connection.Client.WaitForDevicesAsync(2, TimeSpan.FromSeconds(60));
        var jobId = await connection.Client.SubmitAsync(spec);
        var before = await Bounded.Until(c => connection.Client.GetStatusAsync(jobId, c), s => s.State == JobState.Running && s.CommittedStep >= 10,
            "the job training on both silos", TimeSpan.FromMinutes(2));

        // 503 Server Busy for every table request of the silos, for longer than a silo's IAmAlive period and several probe rounds.
        cluster.Tables!.Set(ProxyMode.Unavailable);
        await Task.Delay(TimeSpan.FromSeconds(40));
        var during = await connection.Client.GetStatusAsync(jobId);
        cluster.Tables.Set(ProxyMode.Forward);

        Assert.True(during.TrainedStep >= before.TrainedStep + 20 || during.State.IsTerminal(), $"trained {before.TrainedStep} -> {during.TrainedStep} during the outage");
        Assert.Equal(before.Plan!.Generation, during.Plan!.Generation);
        var ended = await connection.Client.WaitForCompletionAsync(jobId, Bounded.Within(TimeSpan.FromMinutes(5)));
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        Assert.Equal(reference, ended.FinalParameterDigest);
        Assert.Equal((0, 0), (ended.Replans, ended.Failures));
        Assert.All(cluster.Silos, s => Assert.False(s.HasExited, "a silo process exited during the outage"));
    }
}
