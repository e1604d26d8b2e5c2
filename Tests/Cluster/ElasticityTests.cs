using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Elastic.Tests.Cluster;

/// <summary>
/// A running job changes its data-parallel width as silos join, leave and die, at step boundaries and in new
/// generations, and still ends with the bits of the fixed single-device run.
/// </summary>
public sealed class ElasticityTests
{
    private static readonly TrainingSpec Spec = TestSpecs.Tiny(steps: 150, global: 16, micro: 2) with
    {
        Devices = new DeviceSpec { Min = 1, Max = 4 },
    };

    private static readonly Lazy<Task<string>> Reference = new(() => TestSpecs.ReferenceDigest(Spec));

    /// <summary>Long enough that silos started (or a notice polled) after step 5 arrive well before the end.</summary>
    private static readonly TrainingSpec Long = Spec with { Steps = 600 };

    private static readonly Lazy<Task<string>> LongReference = new(() => TestSpecs.ReferenceDigest(Long));

    [Fact]
    public async Task Silos_that_join_grow_the_job_in_one_replan_and_it_ends_with_the_fixed_layout_bits()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 1);
        var jobId = await cluster.Client.SubmitAsync(Long);
        await Until(cluster, jobId, s => s.CommittedStep >= 5);
        Assert.Equal(2, (await cluster.Client.GetStatusAsync(jobId)).Plan!.Dp);
        await Task.WhenAll(cluster.AddSiloAsync(), cluster.AddSiloAsync());
        var grown = await Until(cluster, jobId, s => s.Plan!.Dp == 4);

        var status = await cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(await LongReference.Value, status.FinalParameterDigest);
        var replans = await Replans(cluster, jobId);
        var join = Assert.Single(replans);
        Assert.StartsWith("join", join.Message);
        Assert.Contains("0 committed step(s) lost", join.Message);
        Assert.Equal((1, 0, 0), (status.Replans, status.Preemptions, status.Failures));
        Assert.True(grown.Plan!.Generation == 2);
        await AssertEveryStepOnce(cluster, jobId, Long);
    }

    [Fact]
    public async Task A_silo_that_stops_gracefully_is_drained_first_and_the_job_ends_with_the_fixed_layout_bits()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(Spec);
        await Until(cluster, jobId, s => s.CommittedStep >= 5);
        var leaving = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        await cluster.Cluster.StopSiloAsync(leaving);
        var shrunk = await cluster.Client.GetStatusAsync(jobId);
        Assert.DoesNotContain(shrunk.Plan!.Devices, d => d.Silo.Equals(leaving.SiloAddress));

        var status = await cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(await Reference.Value, status.FinalParameterDigest);
        var leave = Assert.Single(await Replans(cluster, jobId));
        Assert.StartsWith("leave", leave.Message);
        Assert.Contains("0 committed step(s) lost", leave.Message);
        Assert.Equal((1, 0, 0), (status.Replans, status.Preemptions, status.Failures));
        await AssertEveryStepOnce(cluster, jobId);
    }

    [Fact]
    public async Task A_killed_silo_fails_its_step_and_the_survivors_continue_to_the_fixed_layout_bits()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(Spec);
        await Until(cluster, jobId, s => s.CommittedStep >= 5);
        var killed = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        await cluster.Cluster.KillSiloAsync(killed);

        var status = await cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        var all = new List<JobEvent>();
        await foreach (var progress in cluster.Client.WatchAsync(jobId)) all.AddRange(progress.Events);
        Assert.True(await Reference.Value == status.FinalParameterDigest, string.Join("\n", all));
        var failure = Assert.Single(await Replans(cluster, jobId));
        Assert.StartsWith("failure", failure.Message);
        Assert.Contains("0 committed step(s) lost", failure.Message);
        Assert.DoesNotContain(status.Plan!.Devices, d => d.Silo.Equals(killed.SiloAddress));
        Assert.Equal((1, 0, 1), (status.Replans, status.Preemptions, status.Failures));
        await AssertEveryStepOnce(cluster, jobId);
    }

    [Fact]
    public async Task An_eviction_notice_drains_the_silo_before_it_goes_counts_a_preemption_and_the_job_ends_with_the_fixed_layout_bits()
    {
        using var scheduledEvents = new FakeScheduledEvents();
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2, scheduledEvents: scheduledEvents.Endpoint);
        var jobId = await cluster.Client.SubmitAsync(Long);
        await Until(cluster, jobId, s => s.CommittedStep >= 5);
        var evicted = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        scheduledEvents.Preempt(evicted.Name);

        // The silo drains itself: the job moves off it at a step boundary, then the silo asks its host to stop.
        var moved = await Until(cluster, jobId, s => s.Plan!.Devices.All(d => !d.Silo.Equals(evicted.SiloAddress)));
        var lifetime = evicted.SiloHost.Services.GetRequiredService<IHostApplicationLifetime>();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            while (!lifetime.ApplicationStopping.IsCancellationRequested) await Task.Delay(20, timeout.Token);
        await cluster.Cluster.StopSiloAsync(evicted);

        var status = await cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(await LongReference.Value, status.FinalParameterDigest);
        var preemption = Assert.Single(await Replans(cluster, jobId));
        Assert.StartsWith("preemption", preemption.Message);
        Assert.Contains("eviction notice", preemption.Message);
        Assert.Contains("0 committed step(s) lost", preemption.Message);
        Assert.Equal((1, 1, 0), (status.Replans, status.Preemptions, status.Failures));
        Assert.True(moved.Plan!.Generation == 2);
        await AssertEveryStepOnce(cluster, jobId, Long);
    }

    [Fact]
    public async Task Below_its_minimum_a_job_checkpoints_and_waits_and_when_capacity_returns_it_ends_with_the_fixed_layout_bits()
    {
        var spec = Spec with { Devices = new DeviceSpec { Min = 4, Max = 4 } };
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(spec);
        await Until(cluster, jobId, s => s.CommittedStep >= 5);
        await cluster.Cluster.StopSiloAsync(await cluster.SiloOfReplicaButNotCoordinator(jobId));
        var waiting = await Until(cluster, jobId, s => s.State == JobState.Planning);
        Assert.Equal(waiting.CommittedStep, waiting.LastCheckpointStep);
        await Task.Delay(500);
        Assert.Equal(waiting.CommittedStep, (await cluster.Client.GetStatusAsync(jobId)).CommittedStep);

        await cluster.AddSiloAsync();
        var status = await cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(await Reference.Value, status.FinalParameterDigest);
        var all = new List<JobEvent>();
        await foreach (var progress in cluster.Client.WatchAsync(jobId)) all.AddRange(progress.Events);
        Assert.True(all.Count(e => e.Kind == "replanned") == 1, string.Join("\n", all));
        var leave = all.Single(e => e.Kind == "replanned");
        Assert.Contains("the job waits for devices", leave.Message);
        await AssertEveryStepOnce(cluster, jobId);
    }

    private static async Task<JobStatus> Until(TestCluster cluster, string jobId, Func<JobStatus, bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (true)
        {
            var status = await cluster.Client.GetStatusAsync(jobId, timeout.Token);
            if (condition(status)) return status;
            Assert.False(status.State.IsTerminal(), $"the job ended: {status.State} {status.Error}");
            await Task.Delay(20, timeout.Token);
        }
    }

    private static async Task<List<JobEvent>> Replans(TestCluster cluster, string jobId)
    {
        var events = new List<JobEvent>();
        await foreach (var progress in cluster.Client.WatchAsync(jobId)) events.AddRange(progress.Events);
        return events.Where(e => e.Kind == "replanned").ToList();
    }

    private static async Task AssertEveryStepOnce(TestCluster cluster, string jobId, TrainingSpec? spec = null)
    {
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, (spec ?? Spec).Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }
}
