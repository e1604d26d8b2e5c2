using System.Globalization;
using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Benchmarks;

/// <summary>
/// A training step at tp = 2 (two device threads joined by memory links, with and without sequence parallelism) against
/// tp = 1 on one device thread, the same model and S; alternating rounds. Also each device's share of the parameters
/// (and so of gradients and AdamW moments) and the activations one micro-batch's forward holds per device, beside the
/// formula of Korthikanti et al. All three end every step with the same bits.
/// </summary>
internal static class TensorParallelStep
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var threads = args.Length > 0 ? int.Parse(args[0], inv) : 1;
        const int rounds = 5, stepsPerRound = 4;
        var spec = new TrainingSpec
        {
            Name = "bench-tp", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Vocab = 256, Context = 128, Dropout = 0.1, TensorShards = 8 },
            Batch = new BatchSpec { Global = 16, Micro = 8 },
        };
        var corpus = TokenCorpus.Load(spec);
        await using var plane = new DataPlane(IPAddress.Loopback);
        var layouts = new[] { (Tp: 1, Sequence: false), (Tp: 2, Sequence: true), (Tp: 2, Sequence: false) };
        var runs = new List<EngineRanks>();
        foreach (var (tp, sequence) in layouts)
            runs.Add(await EngineRanks.StartAsync([plane], spec, corpus, ParallelGrid.Of(1, 1, tp), sequence, threads, $"bench-tp{tp}-{(sequence ? "sp" : "nosp")}"));
        var times = await EngineRanks.TimeAlternating(runs, rounds, stepsPerRound);
        var digest = await EngineRanks.SameDigestAsync(runs);
        var activations = new long[runs.Count];
        for (var i = 0; i < runs.Count; i++) activations[i] = await runs[i].ActivationBytesAsync(spec);
        foreach (var run in runs) await run.DisposeAsync();

        var baseline = Statistics.Median(times[0]);
        var m = spec.Model;
        var rows = runs.Select((r, i) => string.Create(inv,
            $"| tp = {layouts[i].Tp}{(layouts[i].Tp > 1 ? layouts[i].Sequence ? ", sequence parallel" : ", no sequence parallelism" : "")} | {Statistics.Median(times[i]):F1} | {baseline / Statistics.Median(times[i]):F2}x | {r.ParametersPerDevice / 1e6:F2} M ({r.ParametersPerDevice * 16 / 1e6:F1} MB with gradients and moments) | {activations[i] / 1e6:F1} MB | {Korthikanti.Activations(spec, layouts[i].Tp, layouts[i].Sequence) / 1e6:F1} MB |"));
        var table = string.Join("\n", new[]
        {
            "| layout | median step (ms) | speed vs tp = 1 | parameters per device | activations per device, measured | Korthikanti et al. |",
            "|---|---:|---:|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            string.Create(inv, $"Activations: the growth of the native heap (glibc mallinfo2) over one micro-batch's forward in training mode ({spec.Batch.Micro} sequences of {m.Context}), per device (the layout's total over tp), everything the forward holds until backward: the {m.Layers} blocks, embeddings, logits and loss. Beside it the paper's per-layer formula for its layout times {m.Layers} layers, at 4-byte activations (twice its fp16 bytes; its 1-byte dropout masks also doubled): sbh(34 + 5as/h) at tp = 1, sbh(10 + 24/t + 5as/(ht)) without and sbh(34/t + 5as/(ht)) with sequence parallelism; it leaves out embeddings and logits."),
            string.Create(inv, $"GPT {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, S = {m.Shards}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, dropout 0.1, fp32; {threads} intra-op thread(s) per device thread; {rounds} alternating rounds of {stepsPerRound} steps, medians. Every layout ended with the same digest ({digest[..12]}). Replicated parameters (LayerNorms, row-parallel biases, position embeddings) stay whole on every device; the rest split over tp."),
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("tensor-parallel", "Tensor parallelism: tp = 2 against tp = 1",
            $"dotnet run -c Release --project Benchmarks -- tensor-parallel {threads}", table);
        return 0;
    }
}
