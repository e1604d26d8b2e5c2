using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests.Training.Sharded;

/// <summary>
/// ZeRO over the data plane: every stage (1: moments sharded; 2: gradients reduce-scattered too; 3: parameters sharded and
/// gathered per layer) at every data-parallel
/// width, alone and with a pipeline or tensor parallelism, ends training with the one-device digest and reports the same
/// losses and gradient norms; each rank keeps only its part of the moments and writes only that part to checkpoints,
/// which load into any layout.
/// </summary>
public sealed class ZeroTrainingTests
{
    // Four layers, tied embeddings and dropout, eight micro-batches of 2: dp 4 gives each replica a block of two.
    private static TrainingSpec Spec(int zero, int pipeline = 1, int tensor = 1, int steps = 3) =>
        TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4 },
            Parallel = new ParallelSpec { Zero = zero, Pipeline = pipeline, Tensor = tensor },
        };

    public static TheoryData<int, int, int, int> Layouts => new()
    {
        // zero, dp, pp, tp
        { 0, 2, 1, 1 },
        { 1, 2, 1, 1 },
        { 1, 4, 1, 1 },
        { 2, 2, 1, 1 },
        { 2, 4, 1, 1 },
        { 2, 2, 2, 1 },
        { 1, 2, 1, 2 },
        { 3, 2, 1, 1 },
        { 3, 4, 1, 1 },
        { 3, 2, 2, 1 },
        { 3, 2, 1, 2 },
    };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Every_zero_stage_ends_with_the_one_device_digest_and_the_same_losses(int zero, int dp, int pp, int tp)
    {
        var spec = Spec(zero, pp, tp);
        var reference = await TestSpecs.OneDeviceSteps(spec);

        var ranks = await Train(spec, ParallelGrid.Of(dp, pp, tp), EngineGrid.AllSteps);

        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.Digest, r.Digest);
            Assert.Equal(reference.Steps, r.Steps);
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Each_replica_keeps_the_moments_of_its_part_only_and_together_they_cover_every_parameter_once(int zero)
    {
        var spec = Spec(zero);
        var whole = await TestSpecs.OnDevice(() =>
        {
            using var trainer = new Trainer(spec, TestSpecs.Corpus(spec));
            return trainer.StateTensors().Where(s => s.Key.StartsWith("adam.m/", StringComparison.Ordinal)).Select(s => s.Key).ToList();
        });

        var parts = await Train(spec, ParallelGrid.Of(4, 1, 1), trainer =>
            trainer.Trainer.StateTensors().Where(s => s.Key.StartsWith("adam.m/", StringComparison.Ordinal)).Select(s => (s.Key, s.Region.Elements)).ToList());

        Assert.Equal(whole.Order(), parts.SelectMany(p => p).Select(p => p.Key).Order());
        Assert.All(parts, p => Assert.NotEmpty(p));
        // Balanced by size: no replica holds more than twice the mean (the tied embedding goes whole to replica 0).
        var sizes = parts.Select(p => p.Sum(e => e.Elements)).ToList();
        Assert.True(sizes.Max() <= 2 * sizes.Average(), $"moment elements per replica: {string.Join(", ", sizes)}");
    }

    [Theory]
    [InlineData(2, 4, 0, 1)]
    [InlineData(0, 1, 2, 4)]
    [InlineData(1, 4, 2, 2)]
    [InlineData(3, 4, 1, 2)]
    [InlineData(2, 2, 3, 4)]
    public async Task A_checkpoint_written_by_zero_ranks_resumes_at_another_stage_and_width_to_the_uninterrupted_digest(int savedZero, int savedDp, int resumedZero, int resumedDp)
    {
        var spec = Spec(savedZero, steps: 4);
        var reference = await TestSpecs.ReferenceDigest(spec);

        // Every replica writes its share: the parameters in rotation, the moments of its own part.
        var (_, digests) = await EngineGrid.CheckpointAndResume(spec, ParallelGrid.Of(savedDp, 1, 1),
            spec with { Parallel = spec.Parallel with { Zero = resumedZero } }, ParallelGrid.Of(resumedDp, 1, 1));

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    [Fact]
    public async Task Zero_3_gathers_and_recomputation_leave_no_more_live_tensors_after_twenty_steps_than_after_two()
    {
        var spec = Spec(3, steps: 22);
        var counts = await Train(spec, ParallelGrid.Of(2, 1, 1), trainer =>
        {
            for (var step = 1; step <= 2; step++) trainer.Step(step);
            var warm = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (var step = 3; step <= spec.Steps; step++) trainer.Step(step);
            trainer.Trainer.EvaluateHeldOut();
            return (Warm: warm, After: TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        });

        // A rank lends views of its parts to its peers, which let go of them on their own threads: a rank that lends more runs
        // than it receives counts them live and its peer counts them freed. Over all ranks nothing may be left.
        Assert.Equal(counts.Sum(c => c.Warm), counts.Sum(c => c.After));
    }

    private static async Task<T[]> Train<T>(TrainingSpec spec, ParallelGrid grid, Func<DataParallelTrainer, T> work)
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        return await EngineGrid.Run(plane, spec, grid, sequenceParallel: true, (_, trainer) => work(trainer), name: $"zero{spec.Parallel.Zero}-{grid}");
    }
}
