using System.Globalization;
using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Benchmarks;

/// <summary>
/// Activation recomputation none, selective and full on one device: the activations one micro-batch's forward holds until
/// its backward (measured on the native heap) against Korthikanti et al.'s formulas, and the median step time against
/// none (the price of running the attention core, or every layer, twice). All three end with the same digest.
/// </summary>
internal static class RecomputeCost
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int rounds = 4, stepsPerRound = 2;
        var baseSpec = new TrainingSpec
        {
            Name = "bench-recompute", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Vocab = 256, Context = 256, Dropout = 0.1, TensorShards = 8 },
            Batch = new BatchSpec { Global = 8, Micro = 4 },
        };
        var corpus = TokenCorpus.Load(baseSpec);
        string[] modes = ["none", "selective", "full"];
        await using var plane = new DataPlane(IPAddress.Loopback);
        var runs = new List<EngineRanks>();
        foreach (var mode in modes)
            runs.Add(await EngineRanks.StartAsync([plane], baseSpec with { Runtime = new RuntimeSpec { Recompute = mode } }, corpus, ParallelGrid.Single, sequence: true, threads: 1, $"bench-recompute-{mode}"));
        var times = await EngineRanks.TimeAlternating(runs, rounds, stepsPerRound);
        var digest = await EngineRanks.SameDigestAsync(runs);
        var activations = new List<long>();
        foreach (var run in runs)
        {
            activations.Add(await run.ActivationBytesAsync(baseSpec));
            await run.DisposeAsync();
        }

        var m = baseSpec.Model;
        var none = Statistics.Median(times[0]);
        var rows = modes.Select((mode, i) => string.Create(inv,
            $"| {mode} | {activations[i] / 1e6:F1} | {Korthikanti.Activations(baseSpec, recompute: mode) / 1e6:F1} | {activations[i] / (double)activations[0]:F2} | {Statistics.Median(times[i]):F0} | {Statistics.Median(times[i]) / none:F2}x |"));
        var table = string.Join("\n", new[]
        {
            "| runtime.recompute | activations, measured (MB) | Korthikanti et al. (MB) | measured vs none | median step (ms) | step time vs none |",
            "|---|---:|---:|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            string.Create(inv, $"Activations: the growth of the native heap (glibc mallinfo2) over one micro-batch's forward in training mode ({baseSpec.Batch.Micro} sequences of {m.Context}), everything kept until backward: the {m.Layers} blocks, embeddings, logits and loss. The formulas (per layer, at 4-byte activations, twice the paper's fp16 bytes, times {m.Layers} layers): none sbh(34 + 5as/h); selective 34sbh (no attention core); full 2sbh (each layer's input). They leave out embeddings and logits, which every mode keeps."),
            "The paper's 5as/h term is the attention core's s x s matrices (scores, softmax, its dropout mask). libtorch's CPU scaled_dot_product_attention is a fused (flash) kernel that keeps no s x s matrix, only q, k, v, the output and the log-sum-exp, so there is little for selective recomputation to drop here and none sits near the formula's total only because logits and embeddings fill the gap; this is why Megatron-LM leaves selective recomputation off when it uses flash attention. Full recomputation keeps each layer's input plus what the embeddings and the head keep (logits and their softmax), and runs every layer's forward twice.",
            string.Create(inv, $"GPT {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, batch {baseSpec.Batch.Global} = {baseSpec.Batch.MicroBatchesPerStep} x {baseSpec.Batch.Micro}, dropout 0.1, fp32, one device thread with 1 intra-op thread; {rounds} alternating rounds of {stepsPerRound} steps after one to warm up, medians. All three ended with the same digest ({digest[..12]})."),
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("recompute", "Activation recomputation: none, selective, full",
            "dotnet run -c Release --project Benchmarks -- recompute", table);
        return 0;
    }
}
