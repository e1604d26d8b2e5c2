using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

/// <summary>A data-parallel job saving checkpoints while it trains, and an engine resuming from one in another layout.</summary>
public sealed class CheckpointingTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync(silos: 2, devicesPerSilo: 2);

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_dp_2_job_checkpoints_as_it_trains_and_a_single_device_resumes_from_it_to_the_same_bits()
    {
        var spec = TestSpecs.Tiny(steps: 6, global: 16, micro: 2) with
        {
            Devices = new DeviceSpec { Min = 2, Max = 2 },
            Checkpoint = new CheckpointSpec { EverySteps = 2, KeepLast = 2 },
        };
        var jobId = await _cluster.Client.SubmitAsync(spec);
        var status = await _cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(6, status.LastCheckpointStep);
        Assert.False(status.Degraded);
        var events = new List<JobEvent>();
        await foreach (var progress in _cluster.Client.WatchAsync(jobId, Bounded.Within())) events.AddRange(progress.Events);
        Assert.Equal(3, events.Count(e => e.Kind == "checkpoint"));

        // Retention kept the last two; each was written by both replicas, every tensor once.
        var store = new LocalDirectoryStore(_cluster.Checkpoints);
        var layout = CheckpointLayout.ForJob(jobId);
        var reader = new CheckpointReader(store, layout);
        Assert.Equal(6, (await reader.LatestAsync())!.Step);
        await Assert.ThrowsAsync<Elastic.Checkpoints.Format.CheckpointCorruptException>(() => reader.ReadManifestAsync(layout.Manifest(2, 1)));
        var manifest = await reader.ReadManifestAsync(layout.Manifest(4, 1));
        Assert.Equal(2, manifest.Chunks.Select(c => c.File).Distinct().Count());
        Assert.Equal(manifest.Chunks.Count, manifest.Chunks.Select(c => c.Key).Distinct().Count());

        // One device picks up the dp = 2 checkpoint of step 4 and ends where the job ended.
        using var device = new DeviceWorker("resume");
        var trainer = await device.Run(1, () => new Trainer(spec, TestSpecs.Corpus(spec)));
        var state = await EngineCheckpoint.ReadAsync(reader, manifest, await device.Run(1, () => EngineCheckpoint.Layout(trainer)));
        var resumed = await device.Run(1, () =>
        {
            trainer.Restore(manifest.Step, (key, _) => state[key]);
            var report = TrainingLoop.Run(trainer);
            trainer.Dispose();
            return report;
        });
        Assert.Equal(status.FinalParameterDigest, resumed.FinalParameterDigest);
    }

    [Fact]
    public async Task A_resume_past_two_damaged_checkpoints_falls_back_twice_to_the_same_bits_and_with_none_left_it_fails_saying_so()
    {
        var spec = TestSpecs.Tiny(steps: 40, global: 16, micro: 2, seed: 23) with
        {
            Devices = new DeviceSpec { Min = 2, Max = 2 },
            Checkpoint = new CheckpointSpec { EverySteps = 2, KeepLast = 3 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var store = new LocalDirectoryStore(_cluster.Checkpoints);
        async Task<string> CancelAtSix()
        {
            var id = await _cluster.Client.SubmitAsync(spec);
            await _cluster.Until(id, s => s.LastCheckpointStep >= 6);
            await _cluster.Client.CancelAsync(id);
            await _cluster.Finish(id);
            return id;
        }
        async Task Damage(string jobId, long step)
        {
            var reader = new CheckpointReader(store, CheckpointLayout.ForJob(jobId));
            var pointer = (await reader.CommittedAsync()).First(c => c.Step == step);
            var chunk = (await reader.ReadManifestAsync(pointer.Manifest)).Chunks[0];
            var path = Path.Combine(_cluster.Checkpoints, chunk.File.Replace('/', Path.DirectorySeparatorChar));
            var bytes = File.ReadAllBytes(path);
            bytes[chunk.ByteOffset] ^= 0xFF;
            File.WriteAllBytes(path, bytes);
        }

        var jobId = await CancelAtSix();
        var committed = (await new CheckpointReader(store, CheckpointLayout.ForJob(jobId)).CommittedAsync()).Select(c => c.Step).ToList();
        foreach (var step in committed.Take(2)) await Damage(jobId, step);
        await _cluster.Client.ResumeAsync(jobId);
        var status = await _cluster.Finish(jobId);
        var events = await _cluster.Events(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{string.Join("\n", events)}");
        Assert.Equal(reference, status.FinalParameterDigest);
        Assert.Equal(2, events.Count(e => e.Kind == JobEventKinds.CheckpointUnreadable));
        Assert.Contains(events, e => e.Kind == JobEventKinds.CheckpointUnreadable && e.Message.Contains($"falling back to the checkpoint of step {committed[2]}"));
        // Each damaged checkpoint is marked: retention no longer counts it among those it keeps.
        Assert.All(events.Where(e => e.Kind == JobEventKinds.CheckpointUnreadable), e => Assert.Contains("marked damaged", e.Message));

        // Every checkpoint damaged: nothing to fall back to, and the job says so instead of training from a bad state.
        var doomed = await CancelAtSix();
        foreach (var step in (await new CheckpointReader(store, CheckpointLayout.ForJob(doomed)).CommittedAsync()).Select(c => c.Step).ToList()) await Damage(doomed, step);
        await _cluster.Client.ResumeAsync(doomed);
        var failed = await _cluster.Finish(doomed);
        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains("no older checkpoint to fall back to", failed.Error);
    }

    [Fact]
    public async Task A_job_that_gave_steps_back_resumes_within_the_steps_on_record_not_from_the_newer_checkpoint_past_them()
    {
        // Found by the chaos soak: after a job came back from an older checkpoint, `latest` still named a newer one; a resume
        // restored that state while the record stood at the older step, and the job trained on from the wrong state.
        var spec = TestSpecs.Tiny(steps: 200, global: 16, micro: 2) with
        {
            Devices = new DeviceSpec { Min = 2, Max = 2 },
            Checkpoint = new CheckpointSpec { EverySteps = 10 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var (jobId, _) = await _cluster.CancelAfterCheckpoint(spec, timeout.Token, step: 20);

        // Back to step 10 and stopped there at once: the checkpoints of step 20 and on are past the steps on record.
        await _cluster.Client.ResumeAsync(jobId, step: 10);
        await _cluster.Client.CancelAsync(jobId);
        var stopped = await _cluster.Finish(jobId);
        var resumed = await _cluster.Client.ResumeAsync(jobId);
        Assert.True(resumed.CommittedStep <= stopped.CommittedStep, $"resumed at step {resumed.CommittedStep} with {stopped.CommittedStep} on record");
        var status = await _cluster.Finish(jobId);

        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(reference, status.FinalParameterDigest);
        var report = await _cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task A_cancelled_job_resumes_from_its_checkpoint_on_fewer_devices_and_ends_with_the_uninterrupted_bits()
    {
        var spec = TestSpecs.Tiny(steps: 120, global: 16, micro: 2) with
        {
            Devices = new DeviceSpec { Min = 1, Max = 4 },
            Checkpoint = new CheckpointSpec { EverySteps = 3 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var (jobId, cancelled) = await _cluster.CancelAfterCheckpoint(spec, timeout.Token, step: 6);
        Assert.Equal(4, cancelled.Plan!.Dp);
        await Assert.ThrowsAsync<Elastic.Client.JobStateException>(() => _cluster.Client.ResumeAsync(jobId, step: 2));

        // Another job holds two of the four devices, so the resumed job gets dp = 2.
        var blocker = await _cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Devices = new DeviceSpec { Min = 2, Max = 2 } });
        await Bounded.Until(c => _cluster.Client.GetStatusAsync(blocker, c), s => s.State == JobState.Running, "the blocking job running");
        var resumed = await _cluster.Client.ResumeAsync(jobId);
        Assert.True(resumed.CommittedStep % 3 == 0 && resumed.CommittedStep >= 6, $"resumed from step {resumed.CommittedStep}");
        var status = await _cluster.Finish(jobId);
        await _cluster.Client.CancelAsync(blocker);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(2, status.Plan!.Dp);
        Assert.Equal(2, status.Plan.Generation);
        Assert.Equal(reference, status.FinalParameterDigest);
        var report = await _cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, 120).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task Resuming_from_a_damaged_checkpoint_falls_back_to_the_previous_one_records_it_and_still_ends_with_the_uninterrupted_bits()
    {
        var spec = TestSpecs.Tiny(steps: 60, global: 16, micro: 2) with
        {
            Devices = new DeviceSpec { Min = 2, Max = 2 },
            Checkpoint = new CheckpointSpec { EverySteps = 3, KeepLast = 3 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);
        var jobId = await _cluster.Client.SubmitAsync(spec);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
            await foreach (var progress in _cluster.Client.WatchAsync(jobId, timeout.Token))
                if (progress.Status.LastCheckpointStep >= 9) break;
        await _cluster.Client.CancelAsync(jobId);
        Assert.Equal(JobState.Cancelled, (await _cluster.Finish(jobId)).State);

        // Flip one byte of tensor data in the newest checkpoint's first chunk file.
        var reader = new CheckpointReader(new LocalDirectoryStore(_cluster.Checkpoints), CheckpointLayout.ForJob(jobId));
        var latest = (await reader.LatestAsync())!;
        var damaged = (await reader.ReadManifestAsync(latest.Manifest)).Chunks.OrderBy(c => c.File).ThenBy(c => c.ByteOffset).First(c => c.ByteLength > 64);
        var path = Path.Combine(_cluster.Checkpoints, damaged.File);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[damaged.ByteOffset + damaged.ByteLength / 2] ^= 0x40;
        await File.WriteAllBytesAsync(path, bytes);

        var resumed = await _cluster.Client.ResumeAsync(jobId);
        Assert.Equal(latest.Step, resumed.CommittedStep);
        var status = await _cluster.Finish(jobId);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        var events = new List<JobEvent>();
        await foreach (var progress in _cluster.Client.WatchAsync(jobId, Bounded.Within())) events.AddRange(progress.Events);
        var fallback = Assert.Single(events, e => e.Kind == "checkpoint-unreadable");
        Assert.Contains(damaged.Key, fallback.Message);
        Assert.Contains("SHA-256", fallback.Message);
        Assert.Contains($"step {latest.Step - 3}", fallback.Message);
        Assert.Equal(reference, status.FinalParameterDigest);
        var report = await _cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, 60).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task A_checkpoint_on_demand_is_taken_at_the_next_step_boundary()
    {
        var jobId = await _cluster.Client.SubmitAsync(TestSpecs.Tiny(steps: 100_000) with { Devices = new DeviceSpec { Min = 2, Max = 2 } });
        await Bounded.Until(c => _cluster.Client.GetStatusAsync(jobId, c), s => s.CommittedStep >= 2, "two committed steps");
        Assert.Null((await _cluster.Client.CheckpointAsync(jobId)).LastCheckpointStep);
        var status = await Bounded.Until(c => _cluster.Client.GetStatusAsync(jobId, c), s => s.LastCheckpointStep is not null, "the checkpoint asked for");
        await _cluster.Client.CancelAsync(jobId);
        Assert.True(status.LastCheckpointStep >= 2);
        var latest = await new CheckpointReader(new LocalDirectoryStore(_cluster.Checkpoints), CheckpointLayout.ForJob(jobId)).LatestAsync();
        Assert.Equal(status.LastCheckpointStep, latest!.Step);
        await _cluster.Finish(jobId);
    }
}
