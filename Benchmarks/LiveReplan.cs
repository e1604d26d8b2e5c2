using System.Globalization;
using System.Text.RegularExpressions;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Silo.Hosting;

namespace Elastic.Benchmarks;

/// <summary>
/// A live `replan` of a running job between tp = 2 (dp 2) and tp = 4 (dp 1) on one silo's 4 devices, its state moved
/// between the units' memories, against moving the same job through a checkpoint (checkpoint, stop, resume from it):
/// the pause training takes and the bytes moved, medians over several moves of the same job in the same run.
/// </summary>
internal static partial class LiveReplan
{
    public static async Task<int> Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
        var spec = new TrainingSpec
        {
            Name = "replan-bench",
            Steps = 100_000,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Context = 64, Dropout = 0.1 },
            Batch = new BatchSpec { Global = 8, Micro = 2 },
            Eval = new EvalSpec { Every = 0, Batches = 1 },
            Devices = new DeviceSpec { Min = 1, Max = 4 },
            Parallel = new ParallelSpec { Tensor = 2 },
        };
        var checkpoints = Directory.CreateTempSubdirectory("elastic-replan-bench-").FullName;
        try
        {
            await using var cluster = await EmbeddedCluster.StartAsync([4], checkpoints);
            await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([cluster.Gateway]));
            var client = connection.Client;
            await client.WaitForDevicesAsync(4, TimeSpan.FromSeconds(30));
            var jobId = await client.SubmitAsync(spec);
            var seen = 0L;
            var (live, megabytes, restart, steps) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
            var phases = new[] { new List<double>(), new List<double>(), new List<double>() };
            for (var round = 0; round < rounds; round++)
                foreach (var plan in new[] { "dp=1,tp=4", "dp=2,tp=2" })
                {
                    await Steps(client, jobId, 3);
                    await client.ReplanAsync(jobId, plan);
                    var moved = await Next(client, jobId, "replanned", seen);
                    seen = moved.Index;
                    var pause = double.Parse(PausePattern().Match(moved.Message).Groups[1].Value, CultureInfo.InvariantCulture);
                    var mb = double.Parse(BytesPattern().Match(moved.Message).Groups[1].Value, CultureInfo.InvariantCulture);
                    live.Add(pause);
                    var phase = PhasePattern().Match(moved.Message);
                    for (var k = 0; k < 3; k++) phases[k].Add(double.Parse(phase.Groups[k + 1].Value, CultureInfo.InvariantCulture));
                    megabytes.Add(mb);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"live -> {plan}: paused {pause:F2} s, {mb:F1} MB moved"));
                }
            for (var round = 0; round < rounds; round++)
            {
                await Steps(client, jobId, 3);
                steps.Add((await client.GetReportAsync(jobId)).Steps.TakeLast(3).Average(s => s.Milliseconds) / 1000);
                // Through a checkpoint: checkpoint at the boundary and stop (an interrupted run), then resume from it.
                var watch = System.Diagnostics.Stopwatch.StartNew();
                await client.CheckpointAsync(jobId);
                await client.CancelAsync(jobId);
                var stopped = await Until(client, jobId, s => s.State == JobState.Cancelled);
                await client.ResumeAsync(jobId);
                await Until(client, jobId, s => s.CommittedStep > stopped.CommittedStep);
                // One step trained in that window: it is not pause.
                var pause = watch.Elapsed.TotalSeconds - steps[^1];
                restart.Add(pause);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"checkpoint-restart at step {stopped.CommittedStep}: paused {pause:F2} s"));
            }
            await client.CancelAsync(jobId);
            await client.WaitForCompletionAsync(jobId);

            var inv = CultureInfo.InvariantCulture;
            var (liveMedian, restartMedian) = (Statistics.Median(live), Statistics.Median(restart));
            var table = string.Join("\n",
                "| move | median pause (s) | state moved |",
                "|---|---:|---|",
                string.Create(inv, $"| live `replan` tp 2 <-> 4 (units' memory to memory) | {liveMedian:F2} | {Statistics.Median(megabytes):F1} MB over the data plane |"),
                string.Create(inv, $"| of which: stage and hand over / prepare the new units / move and check the state | {Statistics.Median(phases[0]):F2} / {Statistics.Median(phases[1]):F2} / {Statistics.Median(phases[2]):F2} | |"),
                string.Create(inv, $"| checkpoint, stop, resume from it | {restartMedian:F2} | whole state to storage and back |"),
                "",
                string.Create(inv, $"**Pause through a checkpoint / pause of a live replan: {restartMedian / liveMedian:F2}.** GPT {spec.Model.Layers} layers, d={spec.Model.DModel}, S = {spec.Model.Shards}, context {spec.Model.Context}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}; one in-process silo with 4 CPU devices, checkpoints on local disk; {rounds} moves each way and {rounds} checkpoint restarts of the same job; median step {Statistics.Median(steps):F2} s. The live pause is the job's own `replanned` event figure (probe, stage, prepare, transfer, digest check); the checkpoint path's is wall time from the request to the first step after the resume, less one step. On this 2-core machine the pauses are close: a checkpoint goes to local disk (the page cache), and most of the live pause is CPU work on both ends (slicing the regions, a SHA-256 per block written and verified, copies, the digest check on every replica); the live path saves the storage round-trip, which against remote blob storage is the larger part."));
            Console.WriteLine(table);
            BenchmarkRecord.Write("live-replan", "A live replan tp 2 <-> 4 against a checkpoint restart",
                "dotnet run -c Release --project Benchmarks -- live-replan", table);
            return 0;
        }
        finally
        {
            Directory.Delete(checkpoints, recursive: true);
        }
    }

    /// <summary>Waits until the running job committed <paramref name="count"/> more steps.</summary>
    private static async Task<JobStatus> Steps(ElasticClient client, string jobId, int count)
    {
        var start = (await client.GetStatusAsync(jobId)).CommittedStep;
        return await Until(client, jobId, s => s.State == JobState.Running && s.CommittedStep >= start + count);
    }

    private static async Task<JobStatus> Until(ElasticClient client, string jobId, Func<JobStatus, bool> condition)
    {
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromMinutes(5);
        while (true)
        {
            var status = await client.GetStatusAsync(jobId);
            if (condition(status)) return status;
            if (status.State == JobState.Failed || DateTimeOffset.UtcNow > deadline)
                throw new InvalidOperationException($"job {jobId}: {status.State} {status.Error}");
            await Task.Delay(20);
        }
    }

    private static async Task<JobEvent> Next(ElasticClient client, string jobId, string kind, long after)
    {
        await foreach (var progress in client.WatchAsync(jobId))
            foreach (var e in progress.Events)
                if (e.Index > after && e.Kind == kind) return e;
        throw new InvalidOperationException($"job {jobId} ended before a '{kind}' event");
    }

    [GeneratedRegex(@"paused ([0-9.]+) s")]
    private static partial Regex PausePattern();

    [GeneratedRegex(@"stage and hand over ([0-9.]+) s, prepare ([0-9.]+) s, state ([0-9.]+) s")]
    private static partial Regex PhasePattern();

    [GeneratedRegex(@"\(([0-9.]+) MB\)")]
    private static partial Regex BytesPattern();
}
