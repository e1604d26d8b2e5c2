using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Grains.Scheduling;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Silo.Eviction;
using Elastic.Silo.Hosting;
using Elastic.Training.Collectives;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace Elastic.Tests.Cluster;

/// <summary>A real Orleans cluster in this process: Elastic silos with virtual CPU devices, and an SDK client.</summary>
public sealed class TestCluster : IAsyncDisposable
{
    private TestCluster(InProcessTestCluster cluster, string checkpoints, int devicesPerSilo)
    {
        DevicesPerSilo = devicesPerSilo;
        Cluster = cluster;
        Checkpoints = checkpoints;
        Client = new ElasticClient(cluster.Client);
    }

    public InProcessTestCluster Cluster { get; }
    public int DevicesPerSilo { get; }
    public ElasticClient Client { get; }

    /// <summary>The checkpoint directory every silo of this cluster shares.</summary>
    public string Checkpoints { get; }

    /// <param name="checkpointStorage">An Azure Storage connection string for checkpoints instead of the shared local directory.</param>
    /// <param name="jobs">How jobs are driven (defaults: 20 s collective timeout, quick capacity polls and re-plans).</param>
    /// <param name="scheduledEvents">Each silo watches this Scheduled Events endpoint for an eviction of a VM named like the silo.</param>
    /// <param name="silo">More configuration for each silo, applied before Elastic's (a job store of the test's own, say).</param>
    /// <param name="dataPlaneTls">Every silo's data-plane links inside this TLS.</param>
    public static async Task<TestCluster> StartAsync(int silos, int devicesPerSilo, TimeSpan? collectiveTimeout = null, string? checkpointStorage = null,
        JobOptions? jobs = null, Uri? scheduledEvents = null, Action<ISiloBuilder>? silo = null, DataPlaneTls? dataPlaneTls = null, bool calibrate = false,
        SchedulingOptions? scheduling = null)
    {
        var checkpoints = Directory.CreateTempSubdirectory("elastic-cluster-ckpt-").FullName;
        var builder = new InProcessTestClusterBuilder((short)silos);
        if (silo is not null) builder.ConfigureSilo((_, s) => silo(s));
        builder.ConfigureSilo((options, silo) => silo.AddElastic(new ElasticSiloOptions
        {
            CheckpointDirectory = checkpoints,
            CheckpointConnectionString = checkpointStorage,
            Eviction = scheduledEvents is null
                ? new EvictionOptions()
                : new EvictionOptions { Watch = true, Endpoint = scheduledEvents, VmName = options.SiloName, PollInterval = TimeSpan.FromMilliseconds(200) },
            Devices = new() { Count = devicesPerSilo },
            DataPlaneTls = dataPlaneTls,
            Scheduling = scheduling ?? new(),
            // The planner's choices must not depend on this machine's measured speed (CalibrationTests turn it on).
            Calibrate = calibrate,
            Jobs = jobs ?? new JobOptions
            {
                CollectiveTimeout = collectiveTimeout ?? TimeSpan.FromSeconds(20),
                CapacityPollInterval = TimeSpan.FromMilliseconds(200),
                MinDwell = TimeSpan.FromSeconds(1),
                JoinSettle = TimeSpan.FromMilliseconds(300),
            },
        }, options.SiloName));
        builder.ConfigureClient(client => client.Services.AddSerializer(s => s.AddElasticJobTypes()));
        var cluster = builder.Build();
        await cluster.DeployAsync();
        var testCluster = new TestCluster(cluster, checkpoints, devicesPerSilo);
        // Silo metadata reaches the capacity grain asynchronously.
        await testCluster.Client.WaitForDevicesAsync(silos * devicesPerSilo, TimeSpan.FromSeconds(30));
        return testCluster;
    }

    /// <summary>
    /// Waits for the job to end (bounded: a hang is a test failure, not a stuck run, and it names where the job stood). The
    /// default bound is twice the longest job of the suite on a loaded 2-core machine (a tp 2 job of 150 steps that loses a
    /// silo takes up to 2 minutes there while other test classes run).
    /// </summary>
    public async Task<JobStatus> Finish(string jobId, TimeSpan? within = null)
    {
        var limit = within ?? TimeSpan.FromMinutes(4);
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            return await Client.WaitForCompletionAsync(jobId, timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            var status = await Client.GetStatusAsync(jobId);
            // What has happened so far: the pages that come at once, without waiting for more.
            var events = new List<JobEvent>();
            using var read = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await foreach (var progress in Client.WatchAsync(jobId, read.Token)) events.AddRange(progress.Events);
            }
            catch (OperationCanceledException)
            {
            }
            throw new TimeoutException($"job {jobId} did not end within {limit}: {status.State} at committed step {status.CommittedStep}, plan {status.Plan}\n{string.Join("\n", events)}");
        }
    }

    /// <summary>
    /// Submits <paramref name="spec"/> (which checkpoints), cancels it once its checkpoint of step <paramref name="step"/> (by
    /// default its first) is committed, and waits for it to end cancelled.
    /// </summary>
    public async Task<(string JobId, JobStatus Cancelled)> CancelAfterCheckpoint(TrainingSpec spec, CancellationToken cancellation, long? step = null)
    {
        var jobId = await Client.SubmitAsync(spec);
        await Until(jobId, s => s.LastCheckpointStep >= (step ?? spec.Checkpoint.EverySteps), cancellation);
        await Client.CancelAsync(jobId, cancellation);
        var cancelled = await Finish(jobId);
        Assert.Equal(JobState.Cancelled, cancelled.State);
        return (jobId, cancelled);
    }

    /// <summary>Asserts that a completed job's run is <paramref name="reference"/>'s bit for bit: digest, every step's loss and gradient norm, held-out losses.</summary>
    public async Task AssertSameRun(RunReport reference, JobStatus status)
    {
        var report = await Client.GetReportAsync(status.JobId);
        Assert.Equal(reference.FinalParameterDigest, status.FinalParameterDigest);
        Assert.Equal(reference.FinalParameterDigest, report.FinalParameterDigest);
        Assert.Equal(reference.Steps.Select(s => s.Loss), report.Steps.Select(s => s.Loss));
        Assert.Equal(reference.Steps.Select(s => s.GradNorm), report.Steps.Select(s => s.GradNorm));
        Assert.Equal(reference.HeldOut, report.HeldOut);
    }

    /// <summary>
    /// Trains <paramref name="spec"/> (which checkpoints every 5 steps) on three silos of <paramref name="devicesPerSilo"/>, kills a silo holding a
    /// replica but not the coordinator once a checkpoint exists, and asserts that the job ends with
    /// <paramref name="reference"/> and every step in its report. Returns the one re-plan the kill caused and the event log.
    /// </summary>
    public static async Task<(JobEvent ComeBack, string Log)> KillAReplicaAfterACheckpoint(TrainingSpec spec, string reference, int devicesPerSilo = 1)
    {
        // The job on two of the silos, the third to take the lost one's place.
        await using var cluster = await StartAsync(silos: 3, devicesPerSilo: devicesPerSilo);
        var jobId = await cluster.Client.SubmitAsync(spec);
        await cluster.Until(jobId, s => s.LastCheckpointStep >= 5 && s.CommittedStep >= 8);

        await cluster.Cluster.KillSiloAsync(await cluster.SiloOfReplicaButNotCoordinator(jobId));

        var status = await cluster.Finish(jobId);
        var events = await cluster.Events(jobId);
        var log = string.Join("\n", events);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}\n{log}");
        Assert.True(reference == status.FinalParameterDigest, log);
        var report = await cluster.Client.GetReportAsync(jobId);
        Assert.Equal(Enumerable.Range(1, spec.Steps).Select(i => (long)i), report.Steps.Select(s => s.Step));
        return (Assert.Single(events, e => e.Kind == "replanned"), log);
    }

    /// <summary>Every event of an ended job, in order.</summary>
    public async Task<List<JobEvent>> Events(string jobId)
    {
        var events = new List<JobEvent>();
        await foreach (var progress in Client.WatchAsync(jobId, Bounded.Within())) events.AddRange(progress.Events);
        return events;
    }

    /// <summary>Polls the job until <paramref name="condition"/> holds; fails the test if the job ends first (bounded by <paramref name="cancellation"/>, else a minute).</summary>
    public async Task<JobStatus> Until(string jobId, Func<JobStatus, bool> condition, CancellationToken? cancellation = null)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var token = cancellation ?? timeout.Token;
        while (true)
        {
            var status = await Client.GetStatusAsync(jobId, token);
            if (condition(status)) return status;
            if (status.State.IsTerminal()) Assert.Fail($"the job ended: {status.State} {status.Error}\n{string.Join("\n", await Events(jobId))}");
            await Task.Delay(20, token);
        }
    }

    /// <summary>Starts one more silo and waits until its devices are in the inventory.</summary>
    public async Task<InProcessSiloHandle> AddSiloAsync()
    {
        var devices = (await Client.GetInventoryAsync()).Sum(s => s.Devices);
        var silo = await Cluster.StartAdditionalSiloAsync();
        await Client.WaitForDevicesAsync(devices + DevicesPerSilo, TimeSpan.FromSeconds(30));
        return silo;
    }

    /// <summary>A silo hosting some of the job's replicas but not its coordinator (the job grain).</summary>
    public async Task<InProcessSiloHandle> SiloOfReplicaButNotCoordinator(string jobId)
    {
        var coordinator = await SiloOf(Cluster.Client.GetGrain<IJobGrain>(jobId));
        var plan = (await Client.GetStatusAsync(jobId)).Plan!;
        return Cluster.Silos.First(s => !s.SiloAddress.Equals(coordinator) && plan.Devices.Any(d => d.Silo.Equals(s.SiloAddress)));
    }

    public async Task<SiloAddress?> SiloOf(IAddressable grain) =>
        await Cluster.Client.GetGrain<IManagementGrain>(0).GetActivationAddress(grain);

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        Directory.Delete(Checkpoints, recursive: true);
    }
}
