using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Parallelism.Pipeline;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Parallel;
using Elastic.Training.Parallel.Pipeline;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// Pipeline parallelism measured with each stage in a process of its own (as stages on different silos are), joined
/// over TCP: (a) the bubble, each stage's idle fraction of the step's makespan against (p - 1)/(m + p - 1) for 1F1B
/// and its 1/v reduction interleaved; (b) stage-to-stage activation throughput against raw loopback TCP; (c) the
/// first stage's activation memory against the 1F1B bound of p micro-batches in flight.
/// </summary>
internal static class PipelineStages
{
    private const int Warmup = 2, Measured = 5;

    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var bubbleRows = new List<string>();
        var memoryRows = new List<string>();
        foreach (var p in new[] { 2, 4 })
            foreach (var m in new[] { 4, 8, 16 })
                foreach (var (schedule, v) in new[] { (PipelineSchedule.OneFOneB, 1), (PipelineSchedule.Interleaved, 2) })
                {
                    var endpoints = string.Join(",", WorkerProcesses.FreePorts(p).Select(port => $"127.0.0.1:{port}"));
                    var stages = (await Task.WhenAll(Enumerable.Range(0, p).Select(r =>
                            WorkerProcesses.Run("pipeline-worker", $"{p}", $"{r}", $"{m}", schedule, $"{v}", endpoints))))
                        .Select(o => JsonSerializer.Deserialize<StageRun>(o)!).ToArray();
                    var idle = Idle(stages);
                    var theory = schedule == PipelineSchedule.OneFOneB ? (p - 1.0) / (m + p - 1) : (p - 1.0) / v / (m + (p - 1.0) / v);
                    bubbleRows.Add(string.Create(inv, $"| {p} | {m} | {schedule}{(v > 1 ? $", v = {v}" : "")} | {string.Join(" / ", idle.Select(i => $"{i:P0}"))} | {idle.Average():P0} | {theory:P0} |"));
                    Console.WriteLine(bubbleRows[^1]);
                    var first = stages[0];
                    // Stage 0 holds at most its warm-up forwards plus one: p for 1F1B, (p - 1) 2 + (v - 1) p + 1 chunk-forwards interleaved.
                    var bound = Math.Min(m * v, v == 1 ? p : (p - 1) * 2 + (v - 1) * p + 1);
                    memoryRows.Add(string.Create(inv, $"| {p} | {m} | {schedule}{(v > 1 ? $", v = {v}" : "")} | {first.PeakInFlight} | {bound} | {first.PeakBytes / 1e6:F1} | {first.MicroBatchBytes / 1e6:F2} | {first.PeakBytes / (double)first.MicroBatchBytes:F1} |"));
                }

        var links = new List<string>();
        var ratios = new List<double>();
        foreach (var size in new[] { 1 << 20, 4 << 20, 16 << 20 })
        {
            var raw = await WorkerProcesses.RawTcp(size);
            var ports = WorkerProcesses.FreePorts(2);
            var endpoints = $"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}";
            var receiver = WorkerProcesses.Run("stage-link-worker", "1", $"{size}", endpoints);
            await WorkerProcesses.Run("stage-link-worker", "0", $"{size}", endpoints);
            var rate = double.Parse(await receiver, inv);
            ratios.Add(rate / raw);
            links.Add(string.Create(inv, $"| {size >> 20} MiB | {rate / 1e6:N0} | {raw / 1e6:N0} | {rate / raw:F2} |"));
            Console.WriteLine(links[^1]);
        }

        var spec = Spec(2, 4, PipelineSchedule.OneFOneB, 1).Model;
        var table = string.Join("\n", new[]
        {
            string.Create(inv, $"Each stage a process of its own, joined over loopback TCP (as stages on different silos); the model has {spec.Layers} layers of d {spec.DModel}, context {spec.Context}, micro-batches of 2 sequences, split by FLOPs into p (or p x v) chunks; medians over {Measured} steps after {Warmup} warm-up steps."),
            "",
            "**(a) Bubble.** Each stage's idle fraction of the step's makespan (from the first stage's first forward to the last backward anywhere), its compute counted from when its input or gradient arrived; the paper's (p - 1)/(m + p - 1) for 1F1B and ((p - 1)/v)/(m + (p - 1)/v) interleaved:",
            "",
            "| p | m | schedule | idle per stage | mean | theory |",
            "|---:|---:|---|---|---:|---:|",
        }.Concat(bubbleRows).Concat(new[]
        {
            "",
            "On 2 cores, p processes share 2 cores: a stage's compute slows while others compute, and a stage that waits lends its core to the others, so the measured idle fractions mix the schedule's bubble with CPU sharing (p = 4 most). A GPU per stage measures the schedule alone.",
            "",
            "**(b) Stage-to-stage activation throughput** (one stage posting activation-sized fp32 tensors to the next through `StageLinks`, copied out of and into tensors as in a step, one frame per round and a small acknowledgement back, against raw loopback TCP streaming the same bytes between two processes the same way):",
            "",
            "| frame | stage link (MB/s) | raw loopback TCP (MB/s) | ratio |",
            "|---:|---:|---:|---:|",
        }).Concat(links).Concat(new[]
        {
            "",
            string.Create(inv, $"**Median ratio of stage-link throughput to raw loopback TCP: {Statistics.Median(ratios):F2}.**"),
            "",
            "**(c) First-stage activation memory** (the native heap's growth on the first stage's process over a step, peak at the end of an op, against its first forward of the step: one chunk-forward's activations; the schedule bounds the chunk-forwards held at once on stage 0 by p for 1F1B and by (p - 1) 2 + (v - 1) p + 1 interleaved, each chunk then half a stage):",
            "",
            "| p | m | schedule | peak chunk-forwards in flight | bound | peak activations (MB) | one chunk-forward (MB) | peak / one |",
            "|---:|---:|---|---:|---:|---:|---:|---:|",
        }).Concat(memoryRows).Concat(new[]
        {
            "",
            "1F1B keeps the first stage's activations at p chunk-forwards whatever m (GPipe's all-forwards-first would hold m). Interleaving holds more, smaller chunk-forwards (and the host frames of its posted sends count too); its smaller bubble needs the stages' compute to dominate their communication, which on this machine's tiny chunks it does not.",
        }));
        BenchmarkRecord.Write("pipeline", "Pipeline parallelism: bubble, stage links, first-stage activations",
            "dotnet run -c Release --project Benchmarks -- pipeline", table);
        return 0;
    }

    /// <summary>Per stage, the median over steps of its idle fraction of the step's makespan.</summary>
    private static double[] Idle(StageRun[] stages) =>
        stages.Select(s => Statistics.Median(Enumerable.Range(0, Measured).Select(step =>
        {
            var start = stages.Min(x => x.Steps[step].Min(o => o[0]));
            var end = stages.Max(x => x.Steps[step].Max(o => o[1]));
            return 1 - s.Steps[step].Sum(o => o[1] - o[0]) / (end - start);
        }))).ToArray();

    private static TrainingSpec Spec(int p, int m, string schedule, int v) => new()
    {
        Name = "bench-pipeline", Seed = 1, Steps = Warmup + Measured,
        Model = new ModelSpec { Layers = 8, DModel = 128, Heads = 4, Vocab = 256, Context = 64, TensorShards = 1 },
        Batch = new BatchSpec { Global = 2 * m, Micro = 2 },
        Parallel = new ParallelSpec { Pipeline = p, Schedule = schedule, VirtualStages = v },
    };

    /// <summary>One stage process: joins the pipeline, trains, prints its compute spans (seconds) per measured step and its memory figures.</summary>
    public static async Task<int> Worker(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var (p, rank, m, schedule, v) = (int.Parse(args[0], inv), int.Parse(args[1], inv), int.Parse(args[2], inv), args[3], int.Parse(args[4], inv));
        var endpoints = args[5].Split(',');
        var spec = Spec(p, m, schedule, v);
        var corpus = TokenCorpus.Load(spec);
        await using var plane = new DataPlane(IPAddress.Loopback, int.Parse(endpoints[rank].Split(':')[1], inv));
        using var groups = await ProcessGroups.JoinAsync(plane, "bench", ParallelGrid.Of(1, p, 1), rank, endpoints, WorkerProcesses.Secret, TimeSpan.FromMinutes(2));
        var run = await DeviceWorker.RunOnce("stage", 1, () =>
        {
            using var trainer = new Trainer(spec, corpus, CPU, new TensorParallelGroup(spec.Model.Shards, null), false, new PipelineStage(spec, groups.Along(GridAxis.Pipeline)));
            var spans = new List<double[]>();
            var (inFlight, peakInFlight, baseline, peak, firstForward) = (0, 0, 0L, 0L, 0L);
            trainer.StageObserver = (op, start, end) =>
            {
                var held = NativeHeap.InUse() - baseline;
                peak = Math.Max(peak, held);
                if (op.Kind == PipelineOpKind.Forward && firstForward == 0) firstForward = held;
                inFlight += op.Kind == PipelineOpKind.Forward ? 1 : -1;
                peakInFlight = Math.Max(peakInFlight, inFlight);
                spans.Add([start / (double)Stopwatch.Frequency, end / (double)Stopwatch.Frequency]);
            };
            var steps = new List<double[][]>();
            for (var step = 1; step <= Warmup + Measured; step++)
            {
                spans.Clear();
                (peak, firstForward, baseline) = (0, 0, NativeHeap.InUse());
                trainer.Step(step);
                if (step > Warmup) steps.Add([.. spans]);
            }
            return new StageRun(steps, peakInFlight, peak, firstForward);
        });
        Console.WriteLine(JsonSerializer.Serialize(run));
        return 0;
    }

    /// <summary>One side of the stage-link measurement: rank 0 posts frames of <paramref name="args"/>[1] bytes, rank 1 receives them (and prints the median bytes/s).</summary>
    public static async Task<int> LinkWorker(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var (rank, size, endpoints) = (int.Parse(args[0], inv), int.Parse(args[1], inv), args[2].Split(','));
        await using var plane = new DataPlane(IPAddress.Loopback, int.Parse(endpoints[rank].Split(':')[1], inv));
        using var group = await plane.JoinAsync("bench-link", rank, endpoints, WorkerProcesses.Secret, TimeSpan.FromMinutes(1));
        var rate = await DeviceWorker.RunOnce("stage", 1, () =>
        {
            using var links = new StageLinks(group, CPU);
            long[] shape = [size / sizeof(float)];
            using var activation = rand(shape);
            using var ack = zeros(1);
            var rates = new List<double>();
            for (var i = 0; i <= 12; i++)
            {
                var watch = Stopwatch.StartNew();
                if (rank == 0)
                {
                    links.Send(1, activation);
                    links.Flush();
                    links.Release(links.ReceiveLeased(1, [1]));
                }
                else
                {
                    links.Release(links.ReceiveLeased(0, shape));
                    if (i > 0) rates.Add(size / watch.Elapsed.TotalSeconds);
                    links.Send(0, ack);
                    links.Flush();
                }
            }
            return rank == 1 ? Statistics.Median(rates) : 0;
        });
        Console.WriteLine(rate.ToString("R", inv));
        return 0;
    }

    /// <summary>What one stage process reports: compute spans [start, end] in seconds per measured step, and its memory figures (bytes).</summary>
    private sealed record StageRun(List<double[][]> Steps, int PeakInFlight, long PeakBytes, long MicroBatchBytes);
}
