using System.Diagnostics;
using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

public sealed class SiloFailureTests
{
    [Fact]
    public async Task A_silo_stopped_mid_job_fails_the_job_with_a_clear_event_instead_of_hanging()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2, collectiveTimeout: TimeSpan.FromSeconds(15));
        var jobId = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 10_000) with { Devices = new DeviceSpec { Min = 4, Max = 4 } });
        JobStatus running;
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
            while ((running = await cluster.Client.GetStatusAsync(jobId, timeout.Token)).CommittedStep < 2)
                await Task.Delay(50, timeout.Token);

        // Stop a silo that holds replicas but not the job's coordinator.
        var coordinator = await cluster.SiloOf(cluster.Cluster.Client.GetGrain<IJobGrain>(jobId));
        var victim = running.Plan!.Devices.Select(d => d.Silo).Distinct().First(s => s != coordinator);
        var watch = Stopwatch.StartNew();
        await cluster.Cluster.StopSiloAsync(cluster.Cluster.Silos.Single(s => s.SiloAddress == victim));

        var status = await cluster.Finish(jobId, within: TimeSpan.FromMinutes(1));
        Assert.Equal(JobState.Failed, status.State);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"the failure took {watch.Elapsed} to surface");
        Assert.Contains("failed in generation 1", status.Error);
        var failed = (await cluster.Client.GetReportAsync(jobId)).Steps.Count;
        Assert.Equal(status.CommittedStep, failed);
        var events = new List<JobEvent>();
        await foreach (var progress in cluster.Client.WatchAsync(jobId)) events.AddRange(progress.Events);
        Assert.Equal("failed", events[^1].Kind);
        Assert.Contains("replica", events[^1].Message);
    }
}
