using System.Net;
using Elastic.Checkpoints;
using Elastic.Checkpoints.Format;
using Elastic.Checkpoints.Stores;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

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
    public async Task Eight_shards_of_a_wider_model_at_tp_2_with_sequence_parallelism_keep_the_one_device_bits()
    {
        // The layout whose bits once differed only in a benchmark (S = 8, d = 256: shards handed aliases of their input).
        var spec = TestSpecs.Tiny(steps: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 1, DModel = 256, Heads = 8, TensorShards = 8, Context = 32 },
        };
        var reference = await TestSpecs.ReferenceDigest(spec);

        var digests = await Train(spec, ParallelGrid.Of(1, 1, 2), sequenceParallel: true);

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    [Fact]
    public async Task Bf16_at_tp_2_with_sequence_parallelism_keeps_the_one_device_bf16_bits()
    {
        // bf16 matmuls, fp32 partial sums (RowParallelLinear), bf16 activations gathered along the sequence.
        var spec = TestSpecs.Tiny(steps: 3, dropout: 0.1) with { Runtime = new RuntimeSpec { Precision = "bf16" } };
        var reference = await TestSpecs.ReferenceDigest(spec);

        var digests = await Train(spec, ParallelGrid.Of(1, 1, 2), sequenceParallel: true);

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

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 1)]
    public async Task A_checkpoint_saved_at_one_tensor_parallel_degree_resumes_at_another_to_the_uninterrupted_digest(int savedAt, int resumedAt)
    {
        var spec = TestSpecs.Tiny(steps: 5, dropout: 0.1);
        var reference = await TestSpecs.ReferenceDigest(spec);
        var store = new MemoryBlobStore();
        var layout = new CheckpointLayout("jobs/tp-resume");

        // Each rank of tp = savedAt writes its own regions after 2 steps; the manifest lists them all.
        var parts = await Train(spec, ParallelGrid.Of(1, 1, savedAt), sequenceParallel: true, (rank, trainer) =>
        {
            for (var step = 1; step <= 2; step++) trainer.Step(step);
            return new CheckpointWriter(store, layout).WriteChunksAsync(2, 1, $"t{rank}", EngineCheckpoint.Capture(trainer.Trainer)).GetAwaiter().GetResult();
        });
        var manifest = await new CheckpointWriter(store, layout).CommitAsync(new CheckpointManifest
        {
            JobId = "tp-resume", Step = 2, Generation = 1, Plan = $"dp=1 tp={savedAt}", CreatedAt = DateTimeOffset.UtcNow, Chunks = parts.SelectMany(p => p).ToList(),
        });

        // Each rank of tp = resumedAt reads just the regions it holds, from whichever chunks have them.
        var digests = await Train(spec, ParallelGrid.Of(1, 1, resumedAt), sequenceParallel: true, (_, trainer) =>
        {
            var state = EngineCheckpoint.ReadAsync(new CheckpointReader(store, layout), manifest, EngineCheckpoint.Layout(trainer.Trainer)).GetAwaiter().GetResult();
            trainer.Trainer.Restore(manifest.Step, (key, _) => state[key]);
            for (var step = 3; step <= spec.Steps; step++) trainer.Step(step);
            return trainer.Trainer.ParameterDigest();
        });

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    private static Task<string[]> Train(TrainingSpec spec, ParallelGrid grid, bool sequenceParallel) =>
        Train(spec, grid, sequenceParallel, (_, trainer) =>
        {
            for (var step = 1; step <= spec.Steps; step++) trainer.Step(step);
            return trainer.Trainer.ParameterDigest();
        });

    private static async Task<T[]> Train<T>(TrainingSpec spec, ParallelGrid grid, bool sequenceParallel, Func<int, DataParallelTrainer, T> work)
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        return await EngineGrid.Run(plane, spec, grid, sequenceParallel, work);
    }
}
