using System.Globalization;
using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Benchmarks;

/// <summary>
/// A MoE GPT against the dense GPT with the same active parameters per token (top-1 of E experts, each the dense MLP's
/// shape): median step time on one device and on two ranks (dp 2, the MoE spreading its experts over both, ep 2, tokens
/// dispatched all-to-all over the data plane), and the memory the layout-free reduction of expert gradients costs: the
/// per-source sums each rank keeps against the expert regions of its flat gradient buffers, which a plain reduction needs alone.
/// </summary>
internal static class MoeCost
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int rounds = 4, stepsPerRound = 2;
        var dense = new TrainingSpec
        {
            Name = "bench-moe", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Vocab = 256, Context = 128, Dropout = 0.1, TensorShards = 8 },
            Batch = new BatchSpec { Global = 16, Micro = 4 },
        };
        MoeSpec Experts(int e) => new() { Experts = e, TopK = 1, Every = 1, CapacityFactor = null };
        var layouts = new (string Label, TrainingSpec Spec, ParallelGrid Grid)[]
        {
            ("dense, 1 device", dense, ParallelGrid.Single),
            ("MoE 4 experts top-1, 1 device", dense with { Model = dense.Model with { Moe = Experts(4) } }, ParallelGrid.Single),
            ("MoE 8 experts top-1, 1 device", dense with { Model = dense.Model with { Moe = Experts(8) } }, ParallelGrid.Single),
            ("dense, dp 2", dense, ParallelGrid.Of(2)),
            ("MoE 8 experts top-1, dp 2 ep 2", dense with { Model = dense.Model with { Moe = Experts(8) }, Parallel = new ParallelSpec { Expert = 2 } }, ParallelGrid.Of(2, 1, 1, 2)),
        };
        var corpus = TokenCorpus.Load(dense);
        await using var plane = new DataPlane(IPAddress.Loopback);
        var runs = new List<EngineRanks>();
        foreach (var (label, spec, grid) in layouts)
            runs.Add(await EngineRanks.StartAsync([plane], spec, corpus, grid, sequence: true, threads: 1, $"bench-moe-{runs.Count}"));
        var times = await EngineRanks.TimeAlternating(runs, rounds, stepsPerRound);
        var memory = new List<(long InFlatBuffers, long PerSource)>();
        var parameters = new List<long>();
        foreach (var run in runs)
        {
            memory.Add(await run.ExpertGradientBytesAsync());
            parameters.Add(run.ParametersPerDevice);
            await run.DisposeAsync();
        }

        double Median(int i) => Statistics.Median(times[i]);
        var rows = layouts.Select((l, i) => string.Create(inv,
            $"| {l.Label} | {parameters[i]:N0} | {Median(i):F0} | {Median(i) / Median(l.Grid.Dp == 1 ? 0 : 3):F2}x |"));
        var (flat, perSource) = memory[^1];
        var table = string.Join("\n", new[]
        {
            "| model and layout | parameters per device | median step (ms) | vs dense on the same devices |",
            "|---|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            "| expert gradients per rank (MoE 8 experts, dp 2 ep 2) | MB |",
            "|---|---:|",
            string.Create(inv, $"| in the flat gradient buffers (a plain reduction's whole cost) | {flat / 1e6:F2} |"),
            string.Create(inv, $"| per-source sums of the layout-free order | {perSource / 1e6:F2} |"),
            string.Create(inv, $"| **layout-free total vs plain** | **{(flat + perSource) / (double)flat:F2}x** |"),
            "",
            string.Create(inv, $"GPT {dense.Model.Layers} layers, d {dense.Model.DModel}, {dense.Model.Heads} heads, context {dense.Model.Context}, every MLP a MoE layer of top-1 experts (each the dense MLP: the same active parameters per token, plus a router of E x d), batch {dense.Batch.Global} = {dense.Batch.MicroBatchesPerStep} x {dense.Batch.Micro}, dropout 0.1, fp32, dropless; one device thread with 1 intra-op thread per rank, ranks on threads of one process joined over loopback TCP; {rounds} alternating rounds of {stepsPerRound} steps after one to warm up, medians."),
            "Active parameters are equal, total ones are not: AdamW's update, the gradient buffers' zeroing and the tree's adds run over every parameter a rank holds, which is why 8 experts on one device cost far more than 4, and why spreading them over 2 replicas (each then holds 4 experts per layer) brings the step back towards the dense one's. Beyond that, the MoE step pays for the router, the top-k routing on the host (a device-to-host copy of the probabilities per layer and micro-batch), one matmul per expert instead of one for all tokens, and the gather and index-add of rows; at ep 2 each MoE layer adds two all-to-alls forward and two backward. Expert gradients: a rank hosts its experts for every source of its expert group, whose micro-batches belong to other blocks of the canonical tree, so it keeps one sum per source and tree level (ep x (log2(micro-batches per replica) + 1) buffers of its experts' size at most) until the block is done; the plain reduction would add every source's contribution into the one flat buffer per micro-batch, and give up the same bits for every ep.",
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("moe", "Mixture of experts: step time against dense, expert-gradient memory",
            "dotnet run -c Release --project Benchmarks -- moe", table);
        return 0;
    }
}
