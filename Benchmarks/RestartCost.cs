using System.Diagnostics;
using System.Globalization;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Stores;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;

namespace Elastic.Benchmarks;

/// <summary>
/// What a restart costs the way torchrun and friends restart: a new silo process from the published folder (as an image
/// runs it), joining the cluster, the job resumed from its latest checkpoint in blob storage (Azurite), until its first
/// step after loading, for the spot-trace replay's model and for a model of about 1 GB of state. The spot-trace replay's
/// checkpoint-restart baseline restarts inside a warm process (about a second); charged this measured cost (scaled like the
/// trace), its ratio to elastic re-planning is measured again on the synthetic trace, beside the uncharged one.
/// </summary>
internal static class RestartCost
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private const int Rounds = 3, AzuritePort = 10530;

    public static async Task<int> Run(string[] args)
    {
        var folder = Directory.CreateTempSubdirectory("elastic-bench-restart-").FullName;
        var root = BenchmarkRecord.RepositoryRoot();
        await Publish(root, Path.Combine(folder, "publish"));
        Directory.CreateDirectory(Path.Combine(folder, "azurite"));
        await LocalAzurite.Start(Path.Combine(folder, "azurite"), AzuritePort);
        var models = new (string Name, ModelSpec Model)[]
        {
            ("the spot-trace replay's (2 layers, d=64)", new ModelSpec { Layers = 2, DModel = 64, Heads = 4, Context = 64, Dropout = 0.1 }),
            ("GPT 12 layers, d=768 (~1 GB of state)", new ModelSpec { Layers = 12, DModel = 768, Heads = 12, Context = 64, Dropout = 0 }),
        };
        var rows = new List<string>();
        double replayRestart = 0;
        try
        {
            foreach (var (name, model) in models)
            {
                var (seconds, bytes) = await Measure(folder, model);
                var median = Statistics.Median(seconds);
                if (replayRestart == 0) replayRestart = median;
                var size = bytes < 1e7 ? string.Create(Inv, $"{bytes / 1e6:F1} MB") : string.Create(Inv, $"{bytes / 1e9:F2} GB");
                var line = string.Create(Inv, $"| {name} | {size} | {median:F1} s | {string.Join(", ", seconds.Select(s => s.ToString("F1", Inv)))} |");
                Console.WriteLine(line);
                rows.Add(line);
            }
        }
        finally
        {
            await LocalAzurite.Stop(Path.Combine(folder, "azurite"));
        }

        // The replay's own restart is the in-process one; the process, the rendezvous and the load come on top, scaled like the trace.
        const double scale = 60, hours = 2, cadence = 5;
        var trace = SpotTraceReplay.Traces().Single(t => t.Key == "synthetic").Trace.Until(TimeSpan.FromHours(hours));
        var notice = TimeSpan.FromSeconds(30 / scale);
        var charge = TimeSpan.FromSeconds(replayRestart / scale);
        var elastic = await SpotTraceReplay.Replay(trace, scale, notice, cadence, SpotTraceReplay.Mode.ElasticWithNotice);
        var warm = await SpotTraceReplay.Replay(trace, scale, notice, cadence, SpotTraceReplay.Mode.CheckpointRestart);
        var charged = await SpotTraceReplay.Replay(trace, scale, notice, cadence, SpotTraceReplay.Mode.CheckpointRestart, charge);
        foreach (var result in new[] { elastic, warm, charged }) Console.WriteLine(result.Line());
        Directory.Delete(folder, recursive: true);

        var body = string.Join("\n", [
            "Process start of the published silo (infra/images/publish.sh) to the first step after resuming from the latest checkpoint in Azurite (the cluster formed, the job's units prepared, the checkpoint read and verified); one CPU device, the median of 3 restarts each:",
            "",
            "| model | checkpoint | restart (median) | restarts |",
            "|---|---|---|---|",
            .. rows,
            "",
            string.Create(Inv, $"The synthetic trace's first {hours} h at x{scale} (a checkpoint every {cadence} min of trace time): the checkpoint-restart baseline as before (restarts inside a warm process) and charged the measured restart of the replay's model, {replayRestart:F1} s, scaled like the trace ({charge.TotalMilliseconds:F0} ms per restart):"),
            "",
            "| run | ETTR | ETTR elastic / baseline | goodput | lost steps | restarts |",
            "|---|---|---|---|---|---|",
            string.Create(Inv, $"| elastic, 30 s notice | {elastic.Ettr:F2} | | {elastic.Goodput:F1} | {elastic.Lost} | {elastic.Changes} re-plans |"),
            string.Create(Inv, $"| checkpoint-restart, warm | {warm.Ettr:F2} | **{elastic.Ettr / warm.Ettr:F2}x** | {warm.Goodput:F1} | {warm.Lost} | {warm.Changes} |"),
            string.Create(Inv, $"| checkpoint-restart, charged | {charged.Ettr:F2} | **{elastic.Ettr / charged.Ettr:F2}x** | {charged.Goodput:F1} | {charged.Lost} | {charged.Changes} |"),
            "",
            "On a real cluster the restart also waits for nodes to be scheduled and images to be pulled, and the checkpoint comes from a remote account: minutes, where this machine measures seconds, so the charged ratio is still a lower bound.",
        ]);
        BenchmarkRecord.Write("restart-cost", "Restart cost: a new process from its checkpoint, charged to the checkpoint-restart baseline",
            "dotnet run -c Release --project Benchmarks -- restart-cost", body);
        return 0;
    }

    private static async Task Publish(string root, string output)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        using var script = Process.Start("bash", [Path.Combine(root, "infra", "images", "publish.sh"), output, "--no-build", "-c", configuration]);
        await script.WaitForExitAsync();
        if (script.ExitCode != 0) throw new InvalidOperationException("infra/images/publish.sh failed");
    }

    /// <summary>Trains a step, checkpoints, stops; then starts a new silo and resumes, <see cref="Rounds"/> times: seconds each, and the checkpoint's bytes.</summary>
    private static async Task<(List<double> Seconds, long Bytes)> Measure(string folder, ModelSpec model)
    {
        var spec = new TrainingSpec
        {
            Name = "restart", Steps = 1_000_000, Model = model,
            Batch = new BatchSpec { Global = 2, Micro = 1 },
            Eval = new EvalSpec { Every = 0, Batches = 1 },
            Devices = new DeviceSpec { Min = 1, Max = 1 },
        };
        var storage = LocalAzurite.ConnectionString(AzuritePort) + $"TableEndpoint=http://127.0.0.1:{AzuritePort + 2}/devstoreaccount1;";
        var address = ClusterAddress.Parse("azure:" + storage, clusterId: $"restart-{Guid.NewGuid():N}"[..16]);
        string jobId;
        using (var first = StartSilo(folder, storage, address.ClusterId))
        {
            await using var connection = await ElasticConnection.ConnectAsync(address, TimeSpan.FromMinutes(2));
            var client = connection.Client;
            jobId = await client.SubmitAsync(spec);
            await Until(client, jobId, s => s.CommittedStep >= 1);
            await client.CheckpointAsync(jobId);
            await Until(client, jobId, s => s.LastCheckpointStep is not null);
            await client.CancelAsync(jobId);
            await Until(client, jobId, s => s.State.IsTerminal());
            first.Kill(entireProcessTree: true);
        }
        var store = AzureBlobStore.Connect(storage, "checkpoints");
        var newest = await new CheckpointReader(store, CheckpointLayout.ForJob(jobId)).FindAsync(null) ?? throw new InvalidOperationException("no checkpoint");
        var seconds = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            using var silo = StartSilo(folder, storage, address.ClusterId);
            await using var connection = await ElasticConnection.ConnectAsync(address, TimeSpan.FromMinutes(2));
            var resumed = await connection.Client.ResumeAsync(jobId);
            await Until(connection.Client, jobId, s => s.CommittedStep > resumed.CommittedStep);
            seconds.Add(clock.Elapsed.TotalSeconds);
            await connection.Client.CancelAsync(jobId);
            await Until(connection.Client, jobId, s => s.State.IsTerminal());
            silo.Kill(entireProcessTree: true);
            await silo.WaitForExitAsync();
        }
        return (seconds, newest.Manifest.Chunks.Sum(c => c.ByteLength));
    }

    private static Process StartSilo(string folder, string storage, string clusterId) =>
        WorkerProcesses.Start("dotnet", [Path.Combine(folder, "publish", "silo", "Elastic.Silo.dll")], new Dictionary<string, string>
        {
            ["Elastic__Name"] = "restart", ["Elastic__ClusterId"] = clusterId, ["Elastic__Clustering"] = "azure",
            ["Elastic__ConnectionString"] = storage, ["Elastic__Checkpoints__ConnectionString"] = storage,
            ["Elastic__Devices__Kind"] = "cpu", ["Elastic__Devices__Count"] = "1", ["Elastic__Calibrate"] = "false",
            ["Elastic__SiloPort"] = "11411", ["Elastic__GatewayPort"] = "30411",
        }, workingDirectory: folder);

    /// <summary>Polls the job until <paramref name="done"/> holds, for at most ten minutes.</summary>
    private static async Task Until(IElasticClient client, string jobId, Func<JobStatus, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (!done(await client.GetStatusAsync(jobId)))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {jobId} did not get there in ten minutes");
            await Task.Delay(50);
        }
    }
}
