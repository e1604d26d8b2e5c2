using System.Net;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Parallel;
using static TorchSharp.torch;

namespace Elastic.Tests.Training;

/// <summary>
/// The whole engine over a grid of ranks (dp x pp x tp), each with its own trainer on its own device thread, joined through one data
/// plane as units on one silo are.
/// </summary>
internal static class EngineGrid
{
    /// <summary>Every step of the trainer's spec on one rank: what each returned and the digest at the end (compare with <see cref="TestSpecs.OneDeviceSteps"/>).</summary>
    public static (List<StepResult> Steps, string Digest) AllSteps(DataParallelTrainer trainer)
    {
        var steps = Enumerable.Range(1, trainer.Trainer.Spec.Steps).Select(s => trainer.Step(s)).ToList();
        return (steps, trainer.Trainer.ParameterDigest());
    }

    /// <summary>Runs <paramref name="work"/> on every rank of <paramref name="grid"/> (groups named <paramref name="name"/>).</summary>
    /// <param name="corpus">The data (default: the bundled corpus in bytes, <see cref="TestSpecs.Corpus"/>).</param>
    /// <param name="bucketBytes">The buckets of the gradient reduction during the backward (<see cref="DataParallelTrainer"/>).</param>
    public static async Task<T[]> Run<T>(DataPlane plane, TrainingSpec spec, ParallelGrid grid, bool sequenceParallel, Func<int, DataParallelTrainer, T> work,
        string name = "engine-grid", Elastic.Data.TokenCorpus? corpus = null, long bucketBytes = DataParallelTrainer.DefaultBucketBytes)
    {
        var endpoints = Enumerable.Repeat(plane.Endpoint, grid.Size).ToArray();
        var ranks = Enumerable.Range(0, grid.Size).Select(async rank =>
        {
            var groups = await ProcessGroups.JoinAsync(plane, name, grid, rank, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(60));
            using var worker = new DeviceWorker($"{name}-rank-{rank}");
            return await worker.Run(1, () =>
            {
                using var trainer = RankEngine.Build(spec with { Parallel = spec.Parallel with { Sequence = sequenceParallel } }, CPU, groups, corpus: corpus ?? TestSpecs.Corpus(spec), bucketBytes: bucketBytes);
                return work(rank, trainer);
            });
        });
        return await Task.WhenAll(ranks);
    }

    /// <summary>
    /// Trains <paramref name="spec"/> on <paramref name="saved"/> for <paramref name="savedSteps"/> steps, every rank writing its share
    /// of a checkpoint (as replicas do), then resumes it as <paramref name="resumed"/> on <paramref name="resumedGrid"/> and trains
    /// to the end: the chunks written (no region twice) and each resumed rank's final digest.
    /// </summary>
    public static async Task<(IReadOnlyList<ChunkDescriptor> Chunks, string[] Digests)> CheckpointAndResume(TrainingSpec spec, ParallelGrid saved,
        TrainingSpec resumed, ParallelGrid resumedGrid, int savedSteps = 2)
    {
        var store = new MemoryBlobStore();
        var layout = new CheckpointLayout("jobs/resume");
        await using var plane = new DataPlane(IPAddress.Loopback);
        var written = await Run(plane, spec, saved, sequenceParallel: true, (rank, trainer) =>
        {
            for (var step = 1; step <= savedSteps; step++) trainer.Step(step);
            var state = EngineCheckpoint.Capture(trainer.Trainer, writer: trainer.Replica, writers: trainer.Replicas);
            return new CheckpointWriter(store, layout).WriteChunksAsync(savedSteps, 1, $"r{rank}", state).GetAwaiter().GetResult();
        }, name: $"save-{saved}");
        var chunks = written.SelectMany(p => p).ToList();
        Assert.Equal(chunks.Count, chunks.Select(c => (c.Key, string.Join(",", c.GlobalOffset))).Distinct().Count());
        var manifest = await new CheckpointWriter(store, layout).CommitAsync(new CheckpointManifest
        {
            JobId = "resume", Step = savedSteps, Generation = 1, Plan = saved.ToString(), CreatedAt = DateTimeOffset.UtcNow, Chunks = chunks,
        });
        var digests = await Run(plane, resumed, resumedGrid, sequenceParallel: true, (_, trainer) =>
        {
            var state = EngineCheckpoint.ReadAsync(new CheckpointReader(store, layout), manifest, EngineCheckpoint.Layout(trainer.Trainer)).GetAwaiter().GetResult();
            trainer.Trainer.Restore(manifest.Step, (key, _) => state[key]);
            for (var step = savedSteps + 1; step <= resumed.Steps; step++) trainer.Step(step);
            return trainer.Trainer.ParameterDigest();
        }, name: $"resume-{resumedGrid}");
        return (chunks, digests);
    }
}
