using System.Diagnostics;
using System.Globalization;
using System.Net;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using Elastic.Training.Parallel;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;

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
        var activations = new long[runs.Count];
        for (var i = 0; i < runs.Count; i++) activations[i] = await runs[i].ActivationBytesAsync(spec);
        foreach (var run in runs) await run.DisposeAsync();
        if (digests.Distinct().Count() != 1) throw new InvalidOperationException($"the layouts ended with different parameters: {string.Join(", ", digests)}");

        var baseline = Statistics.Median(times[0]);
        var m = spec.Model;
        var rows = runs.Select((r, i) => string.Create(inv,
            $"| tp = {r.Tp}{(r.Tp > 1 ? r.Sequence ? ", sequence parallel" : ", no sequence parallelism" : "")} | {Statistics.Median(times[i]):F1} | {baseline / Statistics.Median(times[i]):F2}x | {r.ParametersPerDevice / 1e6:F2} M ({r.ParametersPerDevice * 16 / 1e6:F1} MB with gradients and moments) | {activations[i] / 1e6:F1} MB | {Formula(spec, r.Tp, r.Sequence) / 1e6:F1} MB |"));
        var table = string.Join("\n", new[]
        {
            "| layout | median step (ms) | speed vs tp = 1 | parameters per device | activations per device, measured | Korthikanti et al. |",
            "|---|---:|---:|---:|---:|---:|",
        }.Concat(rows).Concat(
        [
            "",
            string.Create(inv, $"Activations: the growth of the native heap (glibc mallinfo2) over one micro-batch's forward in training mode ({spec.Batch.Micro} sequences of {m.Context}), per device (the layout's total over tp), everything the forward holds until backward: the {m.Layers} blocks, embeddings, logits and loss. Beside it the paper's per-layer formula for its layout times {m.Layers} layers, at 4-byte activations (twice its fp16 bytes; its 1-byte dropout masks also doubled): sbh(34 + 5as/h) at tp = 1, sbh(10 + 24/t + 5as/(ht)) without and sbh(34/t + 5as/(ht)) with sequence parallelism; it leaves out embeddings and logits."),
            string.Create(inv, $"GPT {m.Layers} layers, d {m.DModel}, {m.Heads} heads, context {m.Context}, S = {m.Shards}, batch {spec.Batch.Global} = {spec.Batch.MicroBatchesPerStep} x {spec.Batch.Micro}, dropout 0.1, fp32; {threads} intra-op thread(s) per device thread; {rounds} alternating rounds of {stepsPerRound} steps, medians. Every layout ended with the same digest ({digests[0][..12]}). Replicated parameters (LayerNorms, row-parallel biases, position embeddings) stay whole on every device; the rest split over tp."),
        ]));
        Console.WriteLine(table);
        BenchmarkRecord.Write("tensor-parallel", "Tensor parallelism: tp = 2 against tp = 1",
            $"dotnet run -c Release --project Benchmarks -- tensor-parallel {threads}", table);
        return 0;
    }

    /// <summary>Korthikanti et al.'s activation bytes for the blocks of <paramref name="spec"/>'s model at tp = <paramref name="tp"/>, doubled for 4-byte activations.</summary>
    private static double Formula(TrainingSpec spec, int tp, bool sequence)
    {
        var m = spec.Model;
        double s = m.Context, b = spec.Batch.Micro, h = m.DModel, a = m.Heads, t = tp;
        var perLayer = tp == 1 ? s * b * h * (34 + 5 * a * s / h)
            : sequence ? s * b * h * (34 / t + 5 * a * s / (h * t))
            : s * b * h * (10 + 24 / t + 5 * a * s / (h * t));
        return 2 * m.Layers * perLayer;
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

        /// <summary>
        /// What one micro-batch's forward holds until its backward, per device: every rank runs the forward together (their
        /// collectives need each other) between two readings of the native heap, taken while all ranks wait.
        /// </summary>
        public async Task<long> ActivationBytesAsync(TrainingSpec spec)
        {
            using var barrier = new Barrier(_ranks.Length);
            var (before, after) = (0L, 0L);
            await Task.WhenAll(_ranks.Select((r, i) => r.Worker.Run(_threads, () =>
            {
                using var scope = NewDisposeScope();
                var micro = spec.Batch.Micro;
                var tokens = randint(spec.Model.Vocab, [micro, spec.Model.Context + 1], dtype: ScalarType.Int64, generator: new Generator(7));
                var (inputs, targets) = (tokens.narrow(1, 0, spec.Model.Context), tokens.narrow(1, 1, spec.Model.Context));
                var keys = new DropoutKeys(spec.Seed, 1, Enumerable.Range(0, micro).Select(j => (long)j).ToArray());
                barrier.SignalAndWait();
                if (i == 0) before = NativeHeap.InUse();
                barrier.SignalAndWait();
                var loss = r.Trainer.Trainer.Model.Loss(inputs, targets, keys);
                barrier.SignalAndWait();
                if (i == 0) after = NativeHeap.InUse();
                barrier.SignalAndWait();
                return loss.requires_grad;
            })));
            return (after - before) / _ranks.Length;
        }

        public async Task<string> DigestAsync() => (await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => r.Trainer.Trainer.ParameterDigest()))))[0];

        public async ValueTask DisposeAsync()
        {
            await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => { r.Trainer.Dispose(); return true; })));
            foreach (var (worker, _) in _ranks) worker.Dispose();
        }
    }
}
