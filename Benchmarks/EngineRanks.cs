using System.Diagnostics;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Jobs.Reports;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Model;
using Elastic.Training.Parallel;
using static TorchSharp.torch;

namespace Elastic.Benchmarks;

/// <summary>One layout's ranks in this process, each a trainer on its own device thread, joined over one data plane as units on a silo are.</summary>
internal sealed class EngineRanks : IAsyncDisposable
{
    private readonly (DeviceWorker Worker, DataParallelTrainer Trainer)[] _ranks;
    private readonly int _threads;

    private EngineRanks((DeviceWorker, DataParallelTrainer)[] ranks, ParallelGrid grid, int threads) => (_ranks, Grid, _threads) = (ranks, grid, threads);

    public ParallelGrid Grid { get; }
    public long ParametersPerDevice => _ranks[0].Trainer.Trainer.ParameterCount;

    /// <param name="planes">Rank r joins over planes[r mod count]: one plane, device threads of one process; several, ranks that
    /// are other processes to each other (frames over TCP).</param>
    /// <param name="bucketBytes">Where the layout allows, reduce gradients during the backward in buckets of this size; 0: after it.</param>
    public static async Task<EngineRanks> StartAsync(IReadOnlyList<DataPlane> planes, TrainingSpec spec, TokenCorpus corpus, ParallelGrid grid, bool sequence, int threads, string name,
        long bucketBytes = DataParallelTrainer.DefaultBucketBytes)
    {
        var endpoints = Enumerable.Range(0, grid.Size).Select(r => planes[r % planes.Count].Endpoint).ToArray();
        var ranks = await Task.WhenAll(Enumerable.Range(0, grid.Size).Select(async rank =>
        {
            var groups = await ProcessGroups.JoinAsync(planes[rank % planes.Count], name, grid, rank, endpoints, WorkerProcesses.Secret, TimeSpan.FromMinutes(2));
            var worker = new DeviceWorker($"{name}-{rank}");
            var trainer = await worker.Run(threads, () => RankEngine.Build(spec with { Parallel = spec.Parallel with { Sequence = sequence } }, CPU, groups, corpus: corpus, bucketBytes: bucketBytes));
            return (worker, trainer);
        }));
        return new EngineRanks(ranks, grid, threads);
    }

    /// <summary>
    /// Steps every layout in alternating rounds of <paramref name="stepsPerRound"/> (so that the machine's noise falls on all of
    /// them alike), round 0 to warm up and <paramref name="rounds"/> more timed: each layout's step times in milliseconds.
    /// </summary>
    public static async Task<List<double>[]> TimeAlternating(IReadOnlyList<EngineRanks> layouts, int rounds, int stepsPerRound)
    {
        var times = layouts.Select(_ => new List<double>()).ToArray();
        for (var round = 0; round <= rounds; round++)
            for (var i = 0; i < layouts.Count; i++)
                for (var s = 0; s < stepsPerRound; s++)
                {
                    var watch = Stopwatch.StartNew();
                    await layouts[i].StepAsync(round * stepsPerRound + s + 1);
                    if (round > 0) times[i].Add(watch.Elapsed.TotalMilliseconds);
                }
        return times;
    }

    /// <summary>One step on every rank; the bytes the busiest rank sent over its data-parallel group.</summary>
    public async Task<long> StepAsync(long step) =>
        (await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () =>
        {
            var before = r.Trainer.BytesSent;
            r.Trainer.Step(step);
            return r.Trainer.BytesSent - before;
        })))).Max();

    /// <summary>What the busiest rank holds, by kind.</summary>
    public async Task<DeviceMemory> MemoryAsync() => (await MemoryOfEachAsync()).Aggregate((a, b) => DeviceMemory.Heavier(a, b)!);

    /// <summary>What each rank holds, by kind, in rank order.</summary>
    public Task<DeviceMemory[]> MemoryOfEachAsync() => Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => r.Trainer.Memory())));

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

    /// <summary>The busiest rank's hosted-expert gradient bytes: in its flat buffers, and in the per-source sums (<see cref="Trainer.ExpertGradientBytes"/>).</summary>
    public async Task<(long InFlatBuffers, long PerSource)> ExpertGradientBytesAsync() =>
        (await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => r.Trainer.Trainer.ExpertGradientBytes())))).MaxBy(b => b.InFlatBuffers + b.PerSource);

    public async Task<string> DigestAsync() => (await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => r.Trainer.Trainer.ParameterDigest()))))[0];

    /// <summary>The digest every one of <paramref name="runs"/> ended with; throws, naming them all, when they differ.</summary>
    public static async Task<string> SameDigestAsync(IReadOnlyList<EngineRanks> runs)
    {
        var digests = new List<string>();
        foreach (var run in runs) digests.Add(await run.DigestAsync());
        return digests.Distinct().Count() == 1 ? digests[0] : throw new InvalidOperationException($"the runs ended with different parameters: {string.Join(", ", digests)}");
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_ranks.Select(r => r.Worker.Run(_threads, () => { r.Trainer.Dispose(); return true; })));
        foreach (var (worker, _) in _ranks) worker.Dispose();
    }
}
