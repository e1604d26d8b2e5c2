using Azure.Storage.Blobs;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Tests.Cluster;

public sealed class MultiProcessTests
{
    [Fact]
    public async Task Three_silo_processes_complete_a_dp_4_job_with_the_engines_digest()
    {
        var spec = TestSpecs.Tiny(steps: 4, global: 16, micro: 2) with { Devices = new DeviceSpec { Min = 4, Max = 4 } };
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer).FinalParameterDigest;
        });

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
    public async Task A_silo_process_killed_while_uploading_a_checkpoint_leaves_latest_alone_and_retention_removes_its_orphans()
    {
        // A model big enough (about 20 MB of state) that an upload takes a while to catch in the middle.
        var spec = TestSpecs.Tiny(steps: 40, global: 16, micro: 2) with
        {
            Model = new ModelSpec { Layers = 2, DModel = 256, Heads = 4, Vocab = 256, Context = 32, Dropout = 0.1 },
            Devices = new DeviceSpec { Min = 2, Max = 2 },
            Checkpoint = new CheckpointSpec { EverySteps = 2, KeepLast = 2 },
        };
        var reference = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return TrainingLoop.Run(trainer).FinalParameterDigest;
        });
        await using var cluster = await ProcessCluster.StartAsync(silos: 2, devicesPerSilo: 2);
        var store = new AzureBlobStore(new BlobContainerClient(cluster.Storage, "checkpoints"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await using var connection = await cluster.ConnectAsync();
        await connection.Client.WaitForDevicesAsync(4, TimeSpan.FromSeconds(60));
        var jobId = await connection.Client.SubmitAsync(spec, "killed-mid-upload");
        var layout = CheckpointLayout.ForJob(jobId);
        var reader = new CheckpointReader(store, layout);

        // Kill -9 the silo of replica 0 as soon as a checkpoint has one replica's chunks stored and nothing else.
        (string Folder, CheckpointPointer Latest)? caught = null;
        while (caught is null)
        {
            var blobs = new List<string>();
            await foreach (var blob in store.ListAsync(layout.Root + "/", timeout.Token)) blobs.Add(blob);
            var latest = await reader.LatestAsync(timeout.Token);
            var uploading = blobs.GroupBy(b => b[..b.LastIndexOf('/')])
                .FirstOrDefault(f => f.Count() == 1 && f.Single().EndsWith(".safetensors", StringComparison.Ordinal) && latest is not null
                                     && layout.CheckpointOf(f.Single())!.Value.Step > latest.Step);
            if (uploading is not null)
            {
                var plan = (await connection.Client.GetStatusAsync(jobId, timeout.Token)).Plan!;
                cluster.Silos[cluster.SiloPorts.IndexOf(plan.DeviceOf(0).Silo.Endpoint.Port)].Kill(entireProcessTree: true);
                caught = (uploading.Key, latest!);
            }
        }
        Assert.Equal(caught.Value.Latest, await reader.LatestAsync(timeout.Token));
        var orphan = new List<string>();
        await foreach (var blob in store.ListAsync(caught.Value.Folder + "/", timeout.Token)) orphan.Add(blob);
        Assert.NotEmpty(orphan);
        Assert.DoesNotContain(orphan, b => b.EndsWith("/manifest.json", StringComparison.Ordinal));

        // The job fails (a replica or its coordinator died); it resumes from latest on the surviving silo and commits newer checkpoints.
        JobStatus status;
        while ((status = await connection.Client.GetStatusAsync(jobId, timeout.Token)).State != JobState.Failed)
            await Task.Delay(200, timeout.Token);
        Assert.Equal(caught.Value.Latest, await reader.LatestAsync(timeout.Token));
        var resumed = await connection.Client.ResumeAsync(jobId, cancellation: timeout.Token);
        Assert.Equal(caught.Value.Latest.Step, resumed.CommittedStep);
        var ended = await connection.Client.WaitForCompletionAsync(jobId, timeout.Token);
        Assert.True(ended.State == JobState.Completed, $"{ended.State}: {ended.Error}");
        Assert.Equal(reference, ended.FinalParameterDigest);
        await foreach (var blob in store.ListAsync(caught.Value.Folder + "/", timeout.Token))
            Assert.Fail($"retention left the orphan {blob}");
        var final = (await reader.LatestAsync(timeout.Token))!;
        Assert.Equal(40, final.Step);
        var manifest = await reader.ReadManifestAsync(final.Manifest, timeout.Token);
        await reader.ReadRegionsAsync(manifest, manifest.Chunks.Select(c => (c.Key, c.Region)).ToList(), timeout.Token);
    }
}
