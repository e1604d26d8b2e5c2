using System.Diagnostics;
using System.Globalization;
using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Data;
using Elastic.Training.Engine;
using Elastic.Training.Parallel;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>
/// A training step at tp = 2 (two device threads joined by memory links, with and without sequence parallelism) against
/// tp = 1 on one device thread, the same model and S; alternating rounds. Also each device's share of the parameters
/// (and so of gradients and AdamW moments). All three end every step with the same bits.
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
        var runs = new List<Layout>();
        foreach (var (tp, sequence) in layouts) runs.Add(await Layout.StartAsync(plane, spec, corpus, tp, sequence, threads));
        var times = runs.Select(_ => new List<double>()).ToArray();
        var digests = new string[runs.Count];
        for (var round = 0; round <= rounds; round++)
            for (var i = 0; i < runs.Count; i++)
                for (var s = 0; s < stepsPerRound; s++)
                {
                    var watch = Stopwatch.StartNew();
                    await runs[i].StepAsync(round * stepsPerRound + s + 1);
                    if (round > 0) times[i].Add(watch.Elapsed.TotalMilliseconds); // round 0 warms up
                }
        for (var i = 0; i < runs.Count; i++) digests[i] = await runs[i].DigestAsync();
        foreach (var run in runs) await run.DisposeAsync();
        if (digests.Distinct().Count() != 1) throw new InvalidOperationException($"the layouts ended with different parameters: {string.Join(", ", digests)}");

        var baseline = Statistics.Median(times[0]);
        var rows = runs.Select((r, i) => string.Create(inv,
            $"| tp = {r.Tp}{(r.Tp > 1 ? r.Sequence ? ", sequence parallel" : ", no sequence parallelism" : "")} | {Statistics.Median(times[i]):F1} | {baseline / Statistics.Median(times[i]):F2}x | {r.ParametersPerDevice / 1e6:F2} M ({r.ParametersPerDevice * 16 / 1e6:F1} MB with gradients and moments) |"));
        var m = spec.Model;
        var table = string.Join("\n", new[]
        {
            "| layout | median step (ms) | speed vs tp = 1 | parameters per device |",
            "|---|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            string.Create(inv, $"GPT {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, S = {m.Shards}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, dropout 0.1, fp32; {threads} intra-op thread(s) per device thread; {rounds} alternating rounds of {stepsPerRound} steps, medians. Every layout ended with the same digest ({digests[0][..12]}). Replicated parameters (LayerNorms, row-parallel biases, position embeddings) stay whole on every device; the rest split over tp."),
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("tensor-parallel", "Tensor parallelism: tp = 2 against tp = 1",
            $"dotnet run -c Release --project Benchmarks -- tensor-parallel {threads}", table);
        return 0;
    }

    /// <summary>One layout's ranks, each a trainer on its own device thread.</summary>
    private sealed class Layout : IAsyncDisposable
    {
        private readonly (DeviceWorker Worker, DataParallelTrainer Trainer)[] _ranks;
        private readonly int _threads;

        private Layout((DeviceWorker, DataParallelTrainer)[] ranks, int tp, bool sequence, int threads) => (_ranks, Tp, Sequence, _threads) = (ranks, tp, sequence, threads);

        public int Tp { get; }
        public bool Sequence { get; }
        public long ParametersPerDevice => _ranks[0].Trainer.Trainer.ParameterCount;

        public static async Task<Layout> StartAsync(DataPlane plane, TrainingSpec spec, TokenCorpus corpus, int tp, bool sequence, int threads)
        {
            var grid = ParallelGrid.Of(1, 1, tp);
            var endpoints = Enumerable.Repeat(plane.Endpoint, grid.Size).ToArray();
            var name = $"bench-tp{tp}-{(sequence ? "sp" : "nosp")}";
            var ranks = await Task.WhenAll(Enumerable.Range(0, grid.Size).Select(async rank =>
            {
                var groups = await ProcessGroups.JoinAsync(plane, name, grid, rank, endpoints, TimeSpan.FromMinutes(2));
                var worker = new DeviceWorker($"{name}-{rank}");
                var trainer = await worker.Run(threads, () =>
                    new DataParallelTrainer(new Trainer(spec, corpus, CPU, new TensorParallelGroup(spec.Model.Shards, groups.Along(GridAxis.Tensor)), sequence), groups));
                return (worker, trainer);
            }));
            return new Layout(ranks, tp, sequence, threads);
        }

        public Task StepAsync(long step) => Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => r.Trainer.Step(step))));

        public async Task<string> DigestAsync() => (await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => r.Trainer.Trainer.ParameterDigest()))))[0];

        public async ValueTask DisposeAsync()
        {
            await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => { r.Trainer.Dispose(); return true; })));
            foreach (var (worker, _) in _ranks) worker.Dispose();
        }
    }
}
