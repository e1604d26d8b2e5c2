using System.Globalization;
using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Benchmarks;

/// <summary>
/// <c>overlap</c>: data-parallel steps whose gradient is reduced during the backward (in buckets of 25 and 2 MB on a thread of its
/// own, as the units' backward finishes them) against after it (one all-reduce of the whole buffer), at dp 2 on device threads of one process
/// (tensors lent) and on two data planes (frames over loopback TCP). Alternating rounds, medians; every run ends with the same
/// digest, checked.
/// </summary>
internal static class OverlapStep
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int rounds = 5, stepsPerRound = 2;
        var spec = new TrainingSpec
        {
            Name = "bench-overlap", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 6, DModel = 512, Heads = 8, Vocab = 256, Context = 128, Dropout = 0.1 },
            Batch = new BatchSpec { Global = 16, Micro = 4 },
        };
        var corpus = TokenCorpus.Load(spec);
        await using var first = new DataPlane(IPAddress.Loopback);
        await using var second = new DataPlane(IPAddress.Loopback);
        (string Label, DataPlane[] Planes)[] transports = [("device threads of one process (lent tensors)", [first]), ("two data planes (frames over TCP)", [first, second])];
        var runs = new List<EngineRanks>();
        long[] buckets = [0, DataParallelTrainer.DefaultBucketBytes, 2 << 20];
        foreach (var (_, planes) in transports)
            foreach (var bucket in buckets)
                runs.Add(await EngineRanks.StartAsync(planes, spec, corpus, ParallelGrid.Of(2, 1, 1), sequence: true, threads: 1, $"bench-overlap-{runs.Count}", bucket));
        var times = await EngineRanks.TimeAlternating(runs, rounds, stepsPerRound);
        var digest = await EngineRanks.SameDigestAsync(runs);
        var gradientMB = runs[0].ParametersPerDevice * sizeof(float) / 1e6;
        foreach (var run in runs) await run.DisposeAsync();

        var rows = transports.Select((t, i) =>
        {
            var (after, large, small) = (Statistics.Median(times[3 * i]), Statistics.Median(times[3 * i + 1]), Statistics.Median(times[3 * i + 2]));
            return string.Create(inv, $"| {t.Label} | {after:F0} | {large:F0} ({after / large:F2}x) | {small:F0} ({after / small:F2}x) |");
        });
        var m = spec.Model;
        var table = string.Join("\n", new[]
        {
            "| dp 2 over | reduced after the backward (ms) | during it, buckets of 25 MB (ms) | during it, buckets of 2 MB (ms) |",
            "|---|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            string.Create(inv, $"GPT {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro} (two micro-batches per replica), dropout 0.1, fp32, each rank a device thread with 1 intra-op thread; {rounds} alternating rounds of {stepsPerRound} steps after one to warm up, medians. During: the last backward hands each unit's runs of the flat gradient (the head, then each layer from the top) over as the unit's backward finishes, the embeddings' after it, and a bucket goes to the replica's reduction thread once it holds the size named (the last when the backward ends; the gradient is {gradientMB:F0} MB); after: one all-reduce of the whole buffer once the backward is done. All six ended with the same digest ({digest[..12]})."),
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("overlap", "Gradient reduction during the backward against after it",
            "dotnet run -c Release --project Benchmarks -- overlap", table);
        return 0;
    }
}
