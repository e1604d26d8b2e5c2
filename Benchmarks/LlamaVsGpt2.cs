using System.Globalization;
using Elastic.Data;
using Elastic.Jobs;

namespace Elastic.Benchmarks;

/// <summary>
/// A Llama training step against a GPT-2 step of about the same parameter count (Llama's SwiGLU width chosen to match GPT-2's
/// GELU MLP with grouped-query attention), alternating in rounds on one device thread.
/// </summary>
internal static class LlamaVsGpt2
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        var threads = args.Length > 0 ? int.Parse(args[0], inv) : 1;
        const int rounds = 5, stepsPerRound = 6;
        var gpt2 = new TrainingSpec
        {
            Name = "bench-llama", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Vocab = 256, Context = 128, Dropout = 0, TensorShards = 1 },
            Batch = new BatchSpec { Global = 16, Micro = 8 },
        };
        // Per layer GPT-2 has 4d^2 + 2 d 4d weights; Llama with 2 key/value heads of 8 has 2d^2 + 2 d (d/4) + 3 d f: f = 832 matches.
        var llama = gpt2 with { Model = gpt2.Model with { Architecture = "llama", KvHeads = 2, Ffn = 832 } };
        var specs = new[] { gpt2, llama };
        var corpus = TokenCorpus.Load(gpt2);
        var (times, parameters) = await AlternatingSteps.Measure(specs, corpus, threads, rounds, stepsPerRound);
        var (gptMs, llamaMs) = (Statistics.Median(times[0]), Statistics.Median(times[1]));
        var m = gpt2.Model;
        var table = string.Join("\n",
            "| architecture | parameters | median step (ms) |",
            "|---|---:|---:|",
            string.Create(inv, $"| gpt2 (GELU MLP 1024, 8 key/value heads) | {parameters[0]:N0} | {gptMs:F1} |"),
            string.Create(inv, $"| llama (SwiGLU 832, 2 key/value heads, RMSNorm, rotary) | {parameters[1]:N0} | {llamaMs:F1} |"),
            "",
            string.Create(inv, $"**Llama / GPT-2 step time: {llamaMs / gptMs:F2}x** at about the same parameters. {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, batch {gpt2.Batch.Global} = {gpt2.Batch.MicroBatchesPerStep} x {gpt2.Batch.Micro}, fp32, S = 1, {threads} intra-op thread(s); {rounds} alternating rounds of {stepsPerRound} steps, medians over all steps."));
        Console.WriteLine(table);
        BenchmarkRecord.Write("llama-vs-gpt2", "A Llama step against a GPT-2 step of the same size",
            $"dotnet run -c Release --project Benchmarks -- llama-vs-gpt2 {threads}", table);
        return 0;
    }
}
