using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Parallel;
using Elastic.Training.Parallel.Experts;
using Elastic.Training.Parallel.Pipeline;
using Elastic.Training.Parallel.Sharded;
using Elastic.Training.Parallel.TensorParallel;
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
    public static async Task<T[]> Run<T>(DataPlane plane, TrainingSpec spec, ParallelGrid grid, bool sequenceParallel, Func<int, DataParallelTrainer, T> work,
        string name = "engine-grid")
    {
        var endpoints = Enumerable.Repeat(plane.Endpoint, grid.Size).ToArray();
        var ranks = Enumerable.Range(0, grid.Size).Select(async rank =>
        {
            var groups = await ProcessGroups.JoinAsync(plane, name, grid, rank, endpoints, TimeSpan.FromSeconds(60));
            using var worker = new DeviceWorker($"{name}-rank-{rank}");
            return await worker.Run(1, () =>
            {
                var tensor = new TensorParallelGroup(spec.Model.Shards, groups.Along(GridAxis.Tensor));
                var stage = new PipelineStage(spec, groups.Along(GridAxis.Pipeline));
                var experts = spec.Model.Moe is { } moe ? new ExpertGroup(moe.Experts, groups.Experts) : null;
                using var trainer = new DataParallelTrainer(new Trainer(spec, TestSpecs.Corpus(spec), CPU, tensor, sequenceParallel, stage,
                    ZeroShard.Of(spec.Parallel.Zero, groups.Coordinates.Data, groups.Grid.Dp), experts), groups);
                return work(rank, trainer);
            });
        });
        return await Task.WhenAll(ranks);
    }
}
