using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Silo.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;

namespace Elastic.Tests.Cluster;

/// <summary>
/// The store that keeps job records goes down mid-job: training goes on at full speed while the job shows only the steps
/// the store holds, and when the store returns, a write of ours that landed although its reply was lost (our own stale
/// ETag) is no failure: the job goes on and its record catches up.
/// </summary>
public sealed class JobStoreOutageTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-job-store-").FullName;

    [Fact]
    public async Task Training_goes_on_while_the_job_store_is_down_and_the_job_continues_when_it_returns()
    {
        await using var cluster = await StartCluster();
        var jobId = await cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Devices = new DeviceSpec { Min = 2, Max = 2 } });
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var before = await cluster.Until(jobId, s => s.CommittedStep >= 20, timeout.Token);

        // Down: each write hangs for a second and then fails, as a store behind retries and timeouts does.
        var store = Store;
        store.Down = true;
        var outage = System.Diagnostics.Stopwatch.StartNew();
        var during = await cluster.Until(jobId, s => s.TrainedStep >= before.TrainedStep + 60, timeout.Token);
        Assert.True(store.FailedWrites > 0, "the job never tried to write while the store was down");
        Assert.Equal(JobState.Running, during.State);
        var stepsPerSecond = (during.TrainedStep - before.TrainedStep) / outage.Elapsed.TotalSeconds;
        // Shown as committed is only what the store holds: a coordinator lost now could not take it back.
        var held = StepLog.Count(await store.ReadRecord(jobId));
        Assert.True(during.CommittedStep <= held, $"step {during.CommittedStep} shown as committed, the store holds {held}");
        Assert.True(during.TrainedStep > held, $"{during.TrainedStep} steps trained, all {held} of them recorded during the outage");

        // Back, but the first write's reply is lost after it landed: the grain's ETag is now behind its own record.
        store.LoseNextReply = true;
        store.Down = false;
        var written = store.Writes;
        var after = await cluster.Until(jobId, s => s.CommittedStep >= during.TrainedStep + 40 && store.Writes >= written + 2, timeout.Token);
        Assert.Equal(JobState.Running, after.State);
        Assert.False(store.LoseNextReply, "no write reached the store after it came back");

        await cluster.Client.CancelAsync(jobId);
        var ended = await cluster.Finish(jobId);
        Assert.True(ended.State == JobState.Cancelled, $"{ended.State}: {ended.Error}");
        // The end is shown once the store holds it, and with it every step shown.
        var stored = await store.ReadRecord(jobId);
        Assert.Equal(JobState.Cancelled, stored.State);
        Assert.Equal(ended.CommittedStep, StepLog.Count(stored));
        Assert.True(stepsPerSecond > 5, $"{stepsPerSecond:F1} steps/s while the store was down");
    }

    [Fact]
    public async Task A_resume_the_job_store_does_not_take_is_refused_naming_it_leaves_the_job_as_it_was_and_goes_through_once_it_is_back()
    {
        await using var cluster = await StartCluster();
        var spec = TestSpecs.Tiny(steps: 300) with { Devices = new DeviceSpec { Min = 2, Max = 2 }, Checkpoint = new CheckpointSpec { EverySteps = 10 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var (jobId, cancelled) = await cluster.CancelAfterCheckpoint(spec, timeout.Token);

        var store = Store;
        store.Down = true;
        var refused = await Assert.ThrowsAsync<ClusterUnavailableException>(() => cluster.Client.ResumeAsync(jobId, cancellation: timeout.Token));
        Assert.Contains("the job store did not take the resume", refused.Message);
        Assert.Contains($"job {jobId} stays Cancelled", refused.Message);
        var unchanged = await cluster.Client.GetStatusAsync(jobId, timeout.Token);
        Assert.Equal((JobState.Cancelled, cancelled.CommittedStep, cancelled.CommittedStep), (unchanged.State, unchanged.CommittedStep, unchanged.TrainedStep));

        store.Down = false;
        await cluster.Client.ResumeAsync(jobId, cancellation: timeout.Token);
        var ended = await cluster.Finish(jobId);
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        Assert.Equal(reference, ended.FinalParameterDigest);
        var stored = await store.ReadRecord(jobId);
        Assert.Equal((JobState.Completed, 300L), (stored.State, StepLog.Count(stored)));
    }

    [Fact]
    public async Task A_start_that_comes_again_while_the_first_waits_for_the_store_starts_the_job_once()
    {
        // Found by the chaos soak: a submission retried as a paused silo came back reached the job grain while the first start
        // still waited for the store, and the job ran twice beside itself (two plans at once) and ended with wrong losses.
        await using var cluster = await StartCluster();
        var spec = TestSpecs.Tiny(steps: 20) with { Devices = new DeviceSpec { Min = 2, Max = 2 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var job = cluster.Cluster.Client.GetGrain<IJobGrain>("started-twice");
        Assert.Null(await job.GetStatus()); // the silo makes its job store
        Store.SlowRecords = true;

        await Task.WhenAll(job.Start(spec, DateTimeOffset.UtcNow, Tenants.Default), job.Start(spec, DateTimeOffset.UtcNow, Tenants.Default));
        Store.SlowRecords = false;
        var ended = await cluster.Finish("started-twice");

        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        Assert.Equal(reference, ended.FinalParameterDigest);
        var events = (await Store.ReadRecord("started-twice")).Events;
        Assert.Single(events, e => e.Kind == JobEventKinds.Submitted);
        Assert.Single(events, e => e.Kind == JobEventKinds.Planned);
    }

    /// <summary>A one-silo cluster of two devices whose job store is <see cref="Store"/> over this test's folder.</summary>
    private Task<TestCluster> StartCluster() => TestCluster.StartAsync(silos: 1, devicesPerSilo: 2, silo: silo =>
        silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Jobs, (sp, _) =>
            _store = new OutageStore(new DirectoryGrainStorage(_folder, sp.GetRequiredService<Serializer>()))));

    /// <summary>The job store, once the silo has made it (when the first job's record is read).</summary>
    private OutageStore Store => _store ?? throw new InvalidOperationException("the silo has not made its job store yet");

    private OutageStore? _store;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>A job store that can be taken down, and that can lose the reply of a write that landed.</summary>
    private sealed class OutageStore(IGrainStorage inner) : IGrainStorage
    {
        private int _writes;
        private int _failed;

        public volatile bool Down;
        public volatile bool LoseNextReply;
        /// <summary>Each write of a job record takes a second, as a store under load does.</summary>
        public volatile bool SlowRecords;
        public int Writes => _writes;
        public int FailedWrites => _failed;

        public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            await Unavailable();
            await inner.ReadStateAsync(stateName, grainId, grainState);
        }

        public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            await Unavailable();
            if (SlowRecords && grainState.State is JobRecord) await Task.Delay(1000);
            var etag = grainState.ETag;
            await inner.WriteStateAsync(stateName, grainId, grainState);
            Interlocked.Increment(ref _writes);
            if (LoseNextReply && grainState.State is JobRecord)
            {
                LoseNextReply = false;
                grainState.ETag = etag;
                throw new TimeoutException("the store took the write, but its reply was lost");
            }
        }

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);

        public async Task<JobRecord> ReadRecord(string jobId)
        {
            var state = new GrainState<JobRecord>();
            await inner.ReadStateAsync("job", GrainId.Create("job", jobId), state);
            return state.State ?? throw new InvalidOperationException($"no record of job {jobId} in the store");
        }

        private async Task Unavailable()
        {
            if (!Down) return;
            Interlocked.Increment(ref _failed);
            await Task.Delay(1000);
            throw new IOException("the job store is unreachable");
        }
    }
}
