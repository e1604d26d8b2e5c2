using Azure.Storage.Blobs;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Tests.Cluster;

public sealed class MultiProcessTests
{
    [Fact]
    public async Task Three_silo_processes_complete_a_dp_4_job_with_the_engines_digest()
    {
        var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 4, Max = 4 }, Parallel = new ParallelSpec { Start = "dp=4" } };
        var reference = await TestSpecs.ReferenceDigest(spec);

        await using var cluster = await ProcessCluster.StartAsync(silos: 3, devicesPerSilo: 2);
        await using var connection = await cluster.ConnectAsync();
        var inventory = await connection.Client.WaitForDevicesAsync(6, TimeSpan.FromSeconds(60));
        Assert.Equal(3, inventory.Count);

        var jobId = await connection.Client.SubmitAsync(spec, "multi-process");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var status = await connection.Client.WaitForCompletionAsync(jobId, timeout.Token);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        Assert.Equal(4, status.Plan!.Dp);
        Assert.True(status.Plan.Devices.Select(d => d.Silo).Distinct().Count() >= 2, "the replicas should span silo processes");
        Assert.Equal(reference, status.FinalParameterDigest);
    }

    [Fact]
    public async Task A_silo_process_killed_while_uploading_a_checkpoint_never_makes_it_latest_and_retention_removes_its_orphans()
    {
        // About 20 MB of state, each replica uploading half. Silo 1 uploads through a proxy at 4 MB/s, paused once the first
        // checkpoint is committed: its next upload can never end, while silo 0's lands, so the kill surely comes mid-upload
        // (at equal speeds both uploads ended within milliseconds of each other, and on a loaded machine even the slowed
        // upload sometimes ended between the listing and the kill).
        var spec = TestSpecs.Tiny(steps: 40, global: 16, micro: 2) with
        {
            Model = new ModelSpec { Layers = 2, DModel = 256, Heads = 4, Vocab = 256, Context = 32, Dropout = 0.1 },
            Devices = new DeviceSpec { Min = 1, Max = 2 },
            // A replica on each silo, each uploading its half of every checkpoint.
            Parallel = new ParallelSpec { Start = "dp=2" },
            Checkpoint = new CheckpointSpec { EverySteps = 2, KeepLast = 2 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);
        ThrottledProxy? slow = null;
        await using var cluster = await ProcessCluster.StartAsync(silos: 2, devicesPerSilo: 1,
            checkpointBlobPort: (silo, blob) => silo == 1 ? (slow = new ThrottledProxy(blob, bytesPerSecond: 4 << 20)).Port : blob);
        await using var proxy = slow!;
        var store = new AzureBlobStore(new BlobContainerClient(cluster.Storage, "checkpoints"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        await using var connection = await cluster.ConnectAsync();
        var client = connection.Client;

        // As soon as a checkpoint has the chunk file of the replica on silo 0 stored but not the other's, kill -9 silo 1, whose
        // replica's chunks are still uploading through the slow proxy: that checkpoint can never be completed. The scenario
        // needs the job at dp 2 over both silos until that moment; a job that ends or re-plans first (a loaded machine can make
        // a silo look dead for a moment) is cancelled and the scenario is tried again with a new job.
        async Task<(string Folder, CheckpointPointer Latest)?> KillMidUpload(string jobId, CheckpointReader reader, CheckpointLayout layout)
        {
            JobStatus running;
            while ((running = await client.GetStatusAsync(jobId, timeout.Token)) is not { State: JobState.Running, Plan.Dp: 2 })
            {
                if (running.State.IsTerminal()) return null;
                await Task.Delay(20, timeout.Token);
            }
            var processOf = Enumerable.Range(0, 2).Select(r => cluster.Silos[cluster.SiloPorts.IndexOf(running.Plan!.DeviceOf(r).Silo.Endpoint.Port)]).ToArray();
            var fast = Array.IndexOf(processOf, cluster.Silos[0]);
            while (true)
            {
                var now = await client.GetStatusAsync(jobId, timeout.Token);
                if (now.State.IsTerminal() || now.Plan?.Generation != running.Plan!.Generation) return null;
                var blobs = new List<string>();
                await foreach (var blob in store.ListAsync(layout.Root + "/", timeout.Token)) blobs.Add(blob);
                var latest = await reader.LatestAsync(timeout.Token);
                if (latest is not null) slow!.Pause();
                var uploading = blobs.GroupBy(b => b[..b.LastIndexOf('/')])
                    .FirstOrDefault(f => f.Any(b => b.EndsWith($"chunks-r{fast}s0t0.safetensors", StringComparison.Ordinal))
                                         && !f.Any(b => b.EndsWith($"chunks-r{1 - fast}s0t0.safetensors", StringComparison.Ordinal) || b.EndsWith("/manifest.json", StringComparison.Ordinal))
                                         && latest is not null && layout.CheckpointOf(f.First())!.Value.Step > latest.Step);
                if (uploading is not null)
                {
                    processOf[1 - fast].Kill(entireProcessTree: true);
                    return (uploading.Key, latest!);
                }
            }
        }

        string jobId;
        CheckpointLayout layout;
        CheckpointReader reader;
        (string Folder, CheckpointPointer Latest)? caught;
        var attempt = 0;
        do
        {
            Assert.True(++attempt <= 3, "three jobs in a row ended or re-planned before a checkpoint could be caught mid-upload");
            await client.WaitForDevicesAsync(2, TimeSpan.FromSeconds(60));
            jobId = await client.SubmitAsync(spec, $"killed-mid-upload-{attempt}");
            layout = CheckpointLayout.ForJob(jobId);
            reader = new CheckpointReader(store, layout);
            caught = await KillMidUpload(jobId, reader, layout);
            if (caught is null) await CancelIfRunning(client, jobId, timeout.Token);
        }
        while (caught is null);
        Assert.Equal(caught.Value.Latest, await reader.LatestAsync(timeout.Token));
        var orphan = new List<string>();
        await foreach (var blob in store.ListAsync(caught.Value.Folder + "/", timeout.Token)) orphan.Add(blob);
        Assert.NotEmpty(orphan);
        Assert.DoesNotContain(orphan, b => b.EndsWith("/manifest.json", StringComparison.Ordinal));

        // The job re-plans onto the surviving silo (from the survivors' memory, or from latest when none survived) and finishes.
        var ended = await connection.Client.WaitForCompletionAsync(jobId, timeout.Token);
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        Assert.Equal(reference, ended.FinalParameterDigest);
        var events = new List<JobEvent>();
        await foreach (var progress in connection.Client.WatchAsync(jobId, timeout.Token)) events.AddRange(progress.Events);
        Assert.True(ended.Failures >= 1, string.Join("\n", events));
        await foreach (var blob in store.ListAsync(caught.Value.Folder + "/", timeout.Token))
            Assert.Fail($"retention left the orphan {blob}");
        var final = (await reader.LatestAsync(timeout.Token))!;
        Assert.Equal(40, final.Step);
        var manifest = await reader.ReadManifestAsync(final.Manifest, timeout.Token);
        await reader.ReadRegionsAsync(manifest, manifest.Chunks.Select(c => (c.Key, c.Region)).ToList(), timeout.Token);
    }

    private static async Task CancelIfRunning(ElasticClient client, string jobId, CancellationToken cancellation)
    {
        try
        {
            await client.CancelAsync(jobId, cancellation);
        }
        catch (JobStateException)
        {
            // It ended on its own first.
        }
    }

    /// <summary>With <c>redis</c> clustering the job's record, the membership and the reminders are in Redis: the job outlives its coordinator there too.</summary>
    [Theory]
    [InlineData("azure")]
    [InlineData("redis")]
    public async Task Killing_the_silo_process_of_the_coordinator_mid_step_loses_no_committed_step_and_the_job_ends_with_the_fixed_layout_bits(string clustering)
    {
        var spec = TestSpecs.Tiny(steps: 300, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 1, Max = 4 } };
        var reference = await TestSpecs.ReferenceDigest(spec);
        await using var cluster = await ProcessCluster.StartAsync(silos: 3, devicesPerSilo: 1, clustering: clustering);
        await using var connection = await cluster.ConnectAsync();
        await connection.Client.WaitForDevicesAsync(3, TimeSpan.FromSeconds(60));
        // A hang guard, not a timing: this job took up to 2.9 minutes on a loaded 2-core machine while other classes ran.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        var jobId = await connection.Client.SubmitAsync(spec, "kill-coordinator");
        JobStatus before;
        while ((before = await connection.Client.GetStatusAsync(jobId, timeout.Token)).CommittedStep < 20) await Task.Delay(50, timeout.Token);
        Assert.Equal(3, before.Plan!.Dp);

        // Kill -9 the process of the job's coordinator (and of the replica it hosts, if any; at least one replica survives).
        var coordinator = await connection.Cluster.GetGrain<IManagementGrain>(0).GetActivationAddress(connection.Cluster.GetGrain<IJobGrain>(jobId));
        cluster.Silos[cluster.SiloPorts.IndexOf(coordinator!.Endpoint.Port)].Kill(entireProcessTree: true);

        var ended = await connection.Client.WaitForCompletionAsync(jobId, timeout.Token);
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        Assert.Equal(reference, ended.FinalParameterDigest);
        var events = new List<JobEvent>();
        await foreach (var progress in connection.Client.WatchAsync(jobId, timeout.Token)) events.AddRange(progress.Events);
        Assert.Contains(events, e => e.Kind == "coordinator-recovered");
        Assert.All(events.Where(e => e.Kind == "replanned"), e => Assert.Contains(" 0 committed step(s) lost", e.Message));
        var report = await connection.Client.GetReportAsync(jobId, timeout.Token);
        Assert.Equal(Enumerable.Range(1, 300).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }

    [Fact]
    public async Task A_silo_process_holding_one_pipeline_stage_killed_mid_step_leaves_a_complete_pipeline_that_goes_on_losing_no_committed_step()
    {
        var spec = TestSpecs.Tiny(steps: 200, global: 16, micro: 2) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4 },
            Devices = new DeviceSpec { Min = 2, Max = 4 },
            Parallel = new ParallelSpec { Pipeline = 2 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);
        // Four devices for dp 2 x pp 2: two on one process, one on each of two others. Whatever the placement, a replica's
        // stages span two processes, and killing a one-device process breaks exactly one pipeline.
        await using var cluster = await ProcessCluster.StartAsync(silos: 0, devicesPerSilo: 1);
        cluster.StartSilo(0, 2);
        cluster.StartSilo(1, 1);
        cluster.StartSilo(2, 1);
        await using var connection = await cluster.ConnectAsync();
        await connection.Client.WaitForDevicesAsync(4, TimeSpan.FromSeconds(60));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        var jobId = await connection.Client.SubmitAsync(spec, "kill-a-stage");
        JobStatus before;
        while ((before = await connection.Client.GetStatusAsync(jobId, timeout.Token)).CommittedStep < 10) await Task.Delay(20, timeout.Token);
        Assert.Equal((2, 2), (before.Plan!.Dp, before.Plan.Pp));

        // Kill -9 a one-device process that does not host the coordinator, mid-step.
        var coordinator = await connection.Cluster.GetGrain<IManagementGrain>(0).GetActivationAddress(connection.Cluster.GetGrain<IJobGrain>(jobId));
        var victim = new[] { 1, 2 }.First(i => cluster.SiloPorts[i] != coordinator!.Endpoint.Port);
        var broken = Enumerable.Range(0, 2).Single(r => before.Plan.ReplicaGroupOf(r).Any(d => d.Silo.Endpoint.Port == cluster.SiloPorts[victim]));
        cluster.Silos[victim].Kill(entireProcessTree: true);

        var ended = await connection.Client.WaitForCompletionAsync(jobId, timeout.Token);
        var events = new List<JobEvent>();
        await foreach (var progress in connection.Client.WatchAsync(jobId, timeout.Token)) events.AddRange(progress.Events);
        var log = string.Join("\n", events);
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}\n{log}");
        Assert.True(reference == ended.FinalParameterDigest, log);
        Assert.Equal(2, ended.Plan!.Pp);
        // The complete pipeline kept its state on its devices; the broken one's surviving stage was let go.
        Assert.Contains(events, e => e.Kind == "replanned" && e.Message.Contains("kept on their devices") && e.Message.Contains(" 0 committed step(s) lost"));
        Assert.All(events.Where(e => e.Kind == "replanned"), e => Assert.Contains(" 0 committed step(s) lost", e.Message));
        Assert.DoesNotContain(ended.Plan.ReplicaGroupOf(0), d => d.Silo.Endpoint.Port == cluster.SiloPorts[victim]);
        Assert.Equal(before.Plan.ReplicaGroupOf(1 - broken), ended.Plan.ReplicaGroupOf(0));
        var report = await connection.Client.GetReportAsync(jobId, timeout.Token);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
    }
}
