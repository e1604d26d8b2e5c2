using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Parallel;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;

namespace Elastic.Tests.Training.TensorParallel;

/// <summary>
/// The whole engine over a grid of ranks (each on its own device thread, joined through one data plane, as units on
/// one silo are): every data- and tensor-parallel layout, with and without sequence parallelism, ends training with
/// the parameter digest of one device.
/// </summary>
public sealed class TensorParallelTrainingTests
{
    public static TheoryData<int, int, bool> Layouts => new() { { 1, 2, true }, { 2, 2, true }, { 1, 4, true }, { 1, 4, false }, { 2, 2, false } };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Any_data_and_tensor_parallel_layout_ends_with_the_one_device_digest(int dp, int tp, bool sequenceParallel)
    {
        var spec = TestSpecs.Tiny(steps: 4, dropout: 0.1); // S = 4: heads 4, vocabulary 256, MLP 128, context 32
        Assert.Equal(4, spec.Model.Shards);
        var reference = await TestSpecs.ReferenceDigest(spec);

        var digests = await Train(spec, ParallelGrid.Of(dp, 1, tp), sequenceParallel);

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    [Fact]
    public async Task Eight_virtual_shards_on_one_device_are_a_different_model_from_four()
    {
        var four = TestSpecs.Tiny(steps: 2);
        var eight = four with { Model = four.Model with { TensorShards = 8, Heads = 8 } };
        var fourHeads = await TestSpecs.ReferenceDigest(four with { Model = four.Model with { Heads = 8, TensorShards = 4 } });

        Assert.NotEqual(fourHeads, await TestSpecs.ReferenceDigest(eight));
    }

    private static async Task<string[]> Train(TrainingSpec spec, ParallelGrid grid, bool sequenceParallel)
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        var endpoints = Enumerable.Repeat(plane.Endpoint, grid.Size).ToArray();
        var ranks = Enumerable.Range(0, grid.Size).Select(async rank =>
        {
            var groups = await ProcessGroups.JoinAsync(plane, "engine-grid", grid, rank, endpoints, TimeSpan.FromSeconds(60));
            using var worker = new DeviceWorker($"rank-{rank}");
            return await worker.Run(1, () =>
            {
                var tensor = new TensorParallelGroup(spec.Model.Shards, groups.Along(GridAxis.Tensor));
                using var trainer = new DataParallelTrainer(new Trainer(spec, TestSpecs.Corpus(spec), CPU, tensor, sequenceParallel), groups);
                for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
                return trainer.Trainer.ParameterDigest();
            });
        });
        return await Task.WhenAll(ranks);
    }
}
