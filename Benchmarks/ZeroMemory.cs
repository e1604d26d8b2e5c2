using System.Diagnostics;
using System.Globalization;
using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Parallelism;
using Elastic.Training.Collectives;

namespace Elastic.Benchmarks;

/// <summary>
/// ZeRO stages 0 to 3 at dp 1, 2 and 4 (ranks on device threads of this process, over the data plane's TCP): what the
/// busiest device holds by kind against the ZeRO paper's model (fp32 AdamW: 4 bytes of parameters, 4 of gradients, 8 of
/// moments per parameter, the sharded terms divided by dp), the median step time against stage 0 at the same width, and
/// the bytes each rank sends per step against the collectives' volume. Every layout ends with the same digest.
/// </summary>
internal static class ZeroMemory
{
    public static async Task<int> Run(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        const int rounds = 5, stepsPerRound = 2;
        var baseSpec = new TrainingSpec
        {
            Name = "bench-zero", Seed = 1, Steps = (rounds + 1) * stepsPerRound,
            Model = new ModelSpec { Layers = 4, DModel = 256, Heads = 8, Vocab = 256, Context = 128, Dropout = 0.1, TensorShards = 8 },
            Batch = new BatchSpec { Global = 16, Micro = 4 },
        };
        var corpus = TokenCorpus.Load(baseSpec);
        (int Zero, int Dp)[] layouts = [(0, 1), (0, 2), (1, 2), (2, 2), (3, 2), (0, 4), (1, 4), (2, 4), (3, 4)];
        await using var plane = new DataPlane(IPAddress.Loopback);
        var results = new List<(int Zero, int Dp, double Ms, long Bytes, DeviceMemory Memory, string Digest, long Parameters)>();
        foreach (var (zero, dp) in layouts)
        {
            var spec = baseSpec with { Parallel = new ParallelSpec { Zero = zero } };
            await using var ranks = await EngineRanks.StartAsync([plane], spec, corpus, ParallelGrid.Of(dp, 1, 1), sequence: true, threads: 1, $"bench-zero{zero}-dp{dp}");
            var times = new List<double>();
            var sent = new List<double>();
            for (var step = 1; step <= spec.Steps; step++)
            {
                var watch = Stopwatch.StartNew();
                var bytes = await ranks.StepAsync(step);
                if (step > stepsPerRound) // the first round warms up
                {
                    times.Add(watch.Elapsed.TotalMilliseconds);
                    sent.Add(bytes);
                }
            }
            results.Add((zero, dp, Statistics.Median(times), (long)Statistics.Median(sent), await ranks.MemoryAsync(), await ranks.DigestAsync(), ranks.ParametersPerDevice));
            Console.WriteLine($"zero {zero} dp {dp}: {results[^1].Ms:F0} ms, {results[^1].Memory}");
        }
        if (results.Select(r => r.Digest).Distinct().Count() != 1)
            throw new InvalidOperationException($"the layouts ended with different parameters: {string.Join(", ", results.Select(r => $"zero {r.Zero} dp {r.Dp} {r.Digest[..12]}"))}");

        var psi = results[0].Parameters;
        static string MB(double bytes) => (bytes / 1e6).ToString("F1", CultureInfo.InvariantCulture);
        var rows = results.Select(r =>
        {
            var stage0 = results.First(b => b.Zero == 0 && b.Dp == r.Dp).Ms;
            var model = (Parameters: 4.0 * psi / (r.Zero >= 3 ? r.Dp : 1), Gradients: 4.0 * psi / (r.Zero >= 2 ? r.Dp : 1), Optimizer: 8.0 * psi / (r.Zero >= 1 ? r.Dp : 1));
            var m = r.Memory;
            return string.Create(inv,
                $"| {r.Zero} | {r.Dp} | {MB(m.Parameters)} / {MB(model.Parameters)} | {MB(m.Gradients)} / {MB(model.Gradients)} | {MB(m.OptimizerState)} / {MB(model.Optimizer)} | {MB(m.Parameters + m.Gradients + m.OptimizerState)} / {MB(model.Parameters + model.Gradients + model.Optimizer)} | {MB(m.Staging)} | {r.Ms:F0} | {stage0 / r.Ms:F2}x | {MB(r.Bytes)} / {MB(Volume(r.Zero, r.Dp, psi, baseSpec.Batch.MicroBatchesPerStep))} |");
        });
        var table = string.Join("\n", new[]
        {
            "| zero | dp | parameters MB (measured / model) | gradients MB | AdamW moments MB | model states MB | staging MB | median step (ms) | speed vs zero 0 | sent per step per rank MB (measured / collectives) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            string.Create(inv, $"GPT {baseSpec.Model.Layers} layers, d {baseSpec.Model.DModel}, vocabulary {baseSpec.Model.Vocab}, context {baseSpec.Model.Context}: Ψ = {psi:N0} parameters; batch {baseSpec.Batch.Global} = {baseSpec.Batch.MicroBatchesPerStep} x {baseSpec.Batch.Micro}, fp32, dropout 0.1; every rank on its own device thread (1 intra-op thread) of this process, collectives over loopback TCP; {rounds} rounds of {stepsPerRound} steps after one to warm up, medians. All {results.Count} layouts ended with the same digest ({results[0].Digest[..12]})."),
            "Memory is the busiest rank's tracked tensors: its parameters, every gradient buffer its pools keep, its AdamW moments, and staging (the wire buffers of its collectives). The model is the ZeRO paper's for fp32 AdamW (Rajbhandari et al.: 4Ψ + 4Ψ + 8Ψ bytes, sharded terms / dp).",
            "At stage 3 a rank keeps its part of the parameters and gathers each unit (the embeddings, a layer, the head) into one scratch buffer before it runs, forward and again in backward (the unit is recomputed: its activations are not kept either), the next unit's gather already on the wire while it runs; the parameters column counts its part plus the scratch buffer and the prefetch's wire buffer, each sized for the largest unit (here a layer, a quarter of this small model, so at dp 2 the two units eat what the part saves). Its step is slower: every unit runs twice (the recomputation) and is gathered twice per micro-batch, and the prefetch overlaps nothing measurable here, where the sockets and the compute share two cores.",
            "Gradients do not fall at stage 2 here: each replica sums its micro-batches' gradients in the canonical tree (the step's sum and the partial sums of its block, over the whole stage) before the reduce-scatter, which is what keeps the bits of one device; only the reduced sum is sharded. The tied embedding's head leaves add a region to every gradient buffer, and whole parameters are the partition's unit (the tied embedding and its head region go together to rank 0), so the busiest rank's moments are above 8Ψ/dp.",
            "Sent per step: the bytes one rank sent over its data-parallel group (frames and headers). Collectives: stage 0 all-reduces the gradient (reduce-scatter and all-gather, 2(dp-1)/dp of its bytes), stage 1 adds the all-gather of the updated parameters ((dp-1)/dp of their bytes), stage 2 reduce-scatters the gradient instead ((dp-1)/dp) and all-gathers the parameters: 2 x 4Ψ(dp-1)/dp, the volume of stage 0, where the ZeRO paper also puts it. Stage 3 reduce-scatters the gradient and all-gathers every unit twice per micro-batch (forward and backward): (dp-1)/dp x 4Ψ x (1 + 2 x micro-batches per replica), where the paper counts 3 x 4Ψ(dp-1)/dp for one micro-batch.",
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("zero", "ZeRO stages 0 to 3: memory per device, step time and communication",
            "dotnet run -c Release --project Benchmarks -- zero", table);
        return 0;
    }

    /// <summary>Bytes of fp32 payload one rank sends per step over the data-parallel group (the gradient counted as Ψ; headers and the tied head region left out).</summary>
    private static double Volume(int zero, int dp, long psi, int microBatches)
    {
        var share = (dp - 1.0) / dp * 4 * psi;
        return zero switch { 0 => 2 * share, 1 => 3 * share, 2 => 2 * share, _ => share * (1 + 2.0 * microBatches / dp) };
    }
}
