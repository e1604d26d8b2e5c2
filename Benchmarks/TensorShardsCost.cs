using System.Globalization;
using Elastic.Data;
using Elastic.Jobs;

namespace Elastic.Benchmarks;

/// <summary>
/// The price of the layout-invariance contract at tp = 1: a training step of the same GPT computed in S virtual tensor
/// shards (each split layer as S smaller matmuls, sums as trees, per-chunk LayerNorm) against S = 1, alternating in rounds
/// on one device thread.
/// </summary>
internal static class TensorShardsCost
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var shards = args.Length > 0 ? int.Parse(args[0], inv) : 8;
        var threads = args.Length > 1 ? int.Parse(args[1], inv) : 1;
        const int rounds = 5, stepsPerRound = 6;
        var spec = new TrainingSpec
        {
            Name = "bench-shards", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Vocab = 256, Context = 128, Dropout = 0.1 },
            Batch = new BatchSpec { Global = 16, Micro = 8 },
        };
        var specs = new[] { 1, shards }.Select(s => spec with { Model = spec.Model with { TensorShards = s } }).ToArray();
        var corpus = TokenCorpus.Load(spec);
        var (times, _) = await AlternatingSteps.Measure(specs, corpus, threads, rounds, stepsPerRound);
        var (oneMs, shardedMs) = (Statistics.Median(times[0]), Statistics.Median(times[1]));
        var m = spec.Model;
        var table = string.Join("\n",
            "| model.tensorShards | median step (ms) |",
            "|---:|---:|",
            string.Create(inv, $"| 1 | {oneMs:F1} |"),
            string.Create(inv, $"| {shards} | {shardedMs:F1} |"),
            "",
            string.Create(inv, $"**S = {shards} / S = 1 step time: {shardedMs / oneMs:F2}x** at tp = 1. GPT {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, dropout 0.1, fp32, {threads} intra-op thread(s); {rounds} alternating rounds of {stepsPerRound} steps, medians over all steps. S = {shards} is what lets the job move between tp 1, 2, 4 and 8 with the same bits."));
        Console.WriteLine(table);
        BenchmarkRecord.Write("tensor-shards", "The price of virtual tensor shards at tp = 1",
            $"dotnet run -c Release --project Benchmarks -- tensor-shards {shards} {threads}", table);
        return 0;
    }
}
