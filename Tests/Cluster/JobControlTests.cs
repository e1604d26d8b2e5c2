using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

/// <summary>Submitting, refusing and cancelling jobs through the SDK on a one-silo cluster.</summary>
public sealed class JobControlTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync(silos: 1, devicesPerSilo: 2);

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task The_same_idempotency_key_returns_the_same_job_and_refuses_a_different_spec()
    {
        var spec = TestSpecs.Tiny(steps: 2);
        var first = await _cluster.Client.SubmitAsync(spec, "nightly-run-42");
        var again = await _cluster.Client.SubmitAsync(spec with { }, "nightly-run-42");
        Assert.Equal(first, again);
        var conflict = await Assert.ThrowsAsync<IdempotencyConflictException>(() => _cluster.Client.SubmitAsync(spec with { Steps = 3 }, "nightly-run-42"));
        Assert.Contains("nightly-run-42", conflict.Message);
        Assert.Contains(first, conflict.Message);
        var other = await _cluster.Client.SubmitAsync(spec, "nightly-run-43");
        Assert.NotEqual(first, other);
        Assert.Equal(1, (await _cluster.Client.ListAsync()).Count(j => j.JobId == first));
        await _cluster.Finish(first);
        await _cluster.Finish(other);
    }

    [Fact]
    public async Task An_invalid_spec_is_refused_with_every_error_and_activates_nothing()
    {
        var bad = TestSpecs.Tiny() with
        {
            Steps = 0,
            Model = new ModelSpec { DModel = 30, Heads = 4 },
            Batch = new BatchSpec { Global = 12, Micro = 4 },
            Devices = new DeviceSpec { Min = 4, Max = 4 },
            // Pinned: no layout of one device per replica spreads 3 micro-batches over 4 devices.
            Parallel = new ParallelSpec { Tensor = 1, Pipeline = 1 },
            Data = new DataSpec { Source = "/no/such/corpus.txt" },
        };
        var error = await Assert.ThrowsAsync<JobSpecRejectedException>(() => _cluster.Client.SubmitAsync(bad, "bad-one"));
        Assert.Equal(["steps", "model.dModel", "optimizer.warmupSteps", "devices.min", "data.source"], error.Errors.Select(e => e.Field));
        Assert.Contains("no data-parallel width dp in [devices.min 4, devices.max 4]", error.Message);
        Assert.Empty(await _cluster.Client.ListAsync());
        var statistics = await _cluster.Cluster.Client.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        Assert.DoesNotContain(statistics, s => s.GrainType.Contains(nameof(JobGrain), StringComparison.Ordinal) && s.ActivationCount > 0);
        // The key was not consumed: a corrected spec under it is admitted.
        var jobId = await _cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 1), "bad-one");
        Assert.Equal(JobState.Completed, (await _cluster.Finish(jobId)).State);
    }

    [Fact]
    public async Task Cancelling_stops_a_running_job_at_a_step_boundary_and_frees_its_devices()
    {
        var jobId = await _cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 10_000) with { Devices = new DeviceSpec { Min = 2, Max = 2 } });
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await foreach (var progress in _cluster.Client.WatchAsync(jobId, timeout.Token))
            if (progress.Status.CommittedStep >= 3) break;
        var cancelling = await _cluster.Client.CancelAsync(jobId);
        Assert.Equal(JobState.Running, cancelling.State);
        var status = await _cluster.Finish(jobId);
        Assert.Equal(JobState.Cancelled, status.State);
        Assert.InRange(status.CommittedStep, 3, 9_999);
        var report = await _cluster.Client.GetReportAsync(jobId);
        Assert.False(report.Completed);
        Assert.Equal(status.CommittedStep, report.Steps.Count);
        Assert.All(await _cluster.Client.GetInventoryAsync(), silo => Assert.Equal(0, silo.DevicesInUse));
        // A cancelled job stays cancelled, and asking again says so instead of implying it will act.
        var again = await Assert.ThrowsAsync<JobStateException>(() => _cluster.Client.CancelAsync(jobId));
        Assert.Equal($"job {jobId} already cancelled: nothing to cancel", again.Message);
        Assert.Equal(JobState.Cancelled, (await _cluster.Client.GetStatusAsync(jobId)).State);
    }

    [Fact]
    public async Task Unknown_jobs_are_reported_as_such()
    {
        await Assert.ThrowsAsync<JobNotFoundException>(() => _cluster.Client.GetStatusAsync("no-such-job"));
        await Assert.ThrowsAsync<JobNotFoundException>(() => _cluster.Client.CancelAsync("no-such-job"));
    }
}
