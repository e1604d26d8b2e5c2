using Elastic.Benchmarks.Chaos;
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
        await cluster.Until(jobId, s => s.CommittedStep >= 5);
        Assert.Equal(2, (await cluster.Client.GetStatusAsync(jobId)).Plan!.Dp);
        await Task.WhenAll(cluster.AddSiloAsync(), cluster.AddSiloAsync());
        var grown = await cluster.Until(jobId, s => s.Plan!.Dp == 4);

        var (status, join) = await EndsWithFixedLayoutBits(cluster, jobId, Long, LongReference.Value);
        Assert.StartsWith("join", join.Message);
        Assert.Contains("0 committed step(s) lost", join.Message);
        Assert.Equal((1, 0, 0), (status.Replans, status.Preemptions, status.Failures));
        Assert.True(grown.Plan!.Generation == 2);
    }

    [Fact]
    public async Task A_silo_that_stops_gracefully_is_drained_first_and_the_job_ends_with_the_fixed_layout_bits()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(Spec);
        await cluster.Until(jobId, s => s.CommittedStep >= 5);
        var leaving = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        await cluster.Cluster.StopSiloAsync(leaving);
        var shrunk = await cluster.Client.GetStatusAsync(jobId);
        Assert.DoesNotContain(shrunk.Plan!.Devices, d => d.Silo.Equals(leaving.SiloAddress));

        var (status, leave) = await EndsWithFixedLayoutBits(cluster, jobId, Spec, Reference.Value);
        Assert.StartsWith("leave", leave.Message);
        Assert.Contains("0 committed step(s) lost", leave.Message);
        Assert.Equal((1, 0, 0), (status.Replans, status.Preemptions, status.Failures));
    }

    [Fact]
    public async Task A_killed_silo_fails_its_step_and_the_survivors_continue_to_the_fixed_layout_bits()
    {
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(Spec);
        await cluster.Until(jobId, s => s.CommittedStep >= 5);
        var killed = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        await cluster.Cluster.KillSiloAsync(killed);

        var (status, failure) = await EndsWithFixedLayoutBits(cluster, jobId, Spec, Reference.Value);
        Assert.StartsWith("failure", failure.Message);
        Assert.Contains("0 committed step(s) lost", failure.Message);
        Assert.DoesNotContain(status.Plan!.Devices, d => d.Silo.Equals(killed.SiloAddress));
        Assert.Equal((1, 0, 1), (status.Replans, status.Preemptions, status.Failures));
    }

    [Fact]
    public async Task An_eviction_notice_drains_the_silo_before_it_goes_counts_a_preemption_and_the_job_ends_with_the_fixed_layout_bits()
    {
        using var scheduledEvents = new FakeScheduledEvents();
        await using var cluster = await TestCluster.StartAsync(silos: 3, devicesPerSilo: 2, scheduledEvents: scheduledEvents.Endpoint);
        var jobId = await cluster.Client.SubmitAsync(Long);
        await cluster.Until(jobId, s => s.CommittedStep >= 5);
        var evicted = await cluster.SiloOfReplicaButNotCoordinator(jobId);
        scheduledEvents.Preempt(evicted.Name);

        // The silo drains itself: the job moves off it at a step boundary, then the silo asks its host to stop.
        var moved = await cluster.Until(jobId, s => s.Plan!.Devices.All(d => !d.Silo.Equals(evicted.SiloAddress)));
        var lifetime = evicted.SiloHost.Services.GetRequiredService<IHostApplicationLifetime>();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            while (!lifetime.ApplicationStopping.IsCancellationRequested) await Task.Delay(20, timeout.Token);
        await cluster.Cluster.StopSiloAsync(evicted);

        var (status, preemption) = await EndsWithFixedLayoutBits(cluster, jobId, Long, LongReference.Value);
        Assert.StartsWith("preemption", preemption.Message);
        Assert.Contains("eviction notice", preemption.Message);
        Assert.Contains("0 committed step(s) lost", preemption.Message);
        Assert.Equal((1, 1, 0), (status.Replans, status.Preemptions, status.Failures));
        Assert.True(moved.Plan!.Generation == 2);
    }

    [Fact]
    public async Task Below_its_minimum_a_job_checkpoints_and_waits_and_when_capacity_returns_it_ends_with_the_fixed_layout_bits()
    {
        var spec = Spec with { Devices = new DeviceSpec { Min = 4, Max = 4 } };
        await using var cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var jobId = await cluster.Client.SubmitAsync(spec);
        await cluster.Until(jobId, s => s.CommittedStep >= 5);
        await cluster.Cluster.StopSiloAsync(await cluster.SiloOfReplicaButNotCoordinator(jobId));
        var waiting = await cluster.Until(jobId, s => s.State == JobState.Planning);
        var events = (await cluster.Cluster.Client.GetGrain<IJobGrain>(jobId).WaitForProgress(long.MaxValue, 0, TimeSpan.Zero))!.Events;
        Assert.True(waiting.CommittedStep == waiting.LastCheckpointStep, $"committed {waiting.CommittedStep}, checkpoint {waiting.LastCheckpointStep}:\n{string.Join("\n", events)}");
        await Task.Delay(500);
        Assert.Equal(waiting.CommittedStep, (await cluster.Client.GetStatusAsync(jobId)).CommittedStep);

        await cluster.AddSiloAsync();
        var (_, leave) = await EndsWithFixedLayoutBits(cluster, jobId, spec, Reference.Value);
        Assert.Contains("the job waits for devices", leave.Message);
    }

    /// <summary>
    /// Waits for the job to complete and checks what every elasticity test promises: the fixed-layout digest, every step
    /// committed once, and exactly one re-plan, which it returns (the events are in every failure message).
    /// </summary>
    private static async Task<(JobStatus Status, JobEvent Replan)> EndsWithFixedLayoutBits(TestCluster cluster, string jobId, TrainingSpec spec, Task<string> reference)
    {
        var status = await cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(await reference == status.FinalParameterDigest, log);
        var replans = events.Where(e => e.Kind == "replanned").ToList();
        Assert.True(replans.Count == 1, log);
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
        return (status, replans[0]);
    }
}
