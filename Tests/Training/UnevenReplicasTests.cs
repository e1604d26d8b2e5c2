using System.Net;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests.Training;

/// <summary>
/// Data parallelism at any width: replicas that split the step's micro-batches unevenly (3, 5, 6 or 7 of them over 8) sum their
/// blocks as subtrees of the accumulation tree and combine them in it, so they end with the one-device bits, alone, with
/// ZeRO 1, 2 and 3, tensor parallelism, pipeline stages (both schedules) and MoE layers, and through a checkpoint written at one
/// width and resumed at another.
/// </summary>
public sealed class UnevenReplicasTests
{
    [Fact]
    public void Every_split_of_the_leaves_combines_in_the_one_device_tree()
    {
        // Magnitudes far apart make every change of order show in the bits.
        var random = new Random(16);
        for (var leaves = 1; leaves <= 20; leaves++)
        {
            var values = Enumerable.Range(0, leaves).Select(_ => (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-8, 9))).ToArray();
            var reference = PairwiseTree.Reduce(0, leaves, i => values[i], (a, b) => a + b);
            for (var ranks = 1; ranks <= leaves; ranks++)
            {
                var blocks = new ReplicaBlocks(leaves, ranks);
                var pieces = Enumerable.Range(0, ranks).Select(r => blocks.PiecesOf(r)).ToList();
                // Pieces tile each block and blocks tile the leaves, in order.
                Assert.Equal(Enumerable.Range(0, leaves), pieces.SelectMany(p => p).SelectMany(p => Enumerable.Range(p.First, p.Count)));
                Assert.All(Enumerable.Range(0, ranks), r => Assert.Equal(blocks.BlockOf(r).Count, pieces[r].Sum(p => p.Count)));
                if (PairwiseTree.IsAlignedBlockCount(leaves, ranks)) Assert.All(pieces, p => Assert.Single(p));
                // Each piece summed on its own (as a replica does), then all of them combined.
                var sum = blocks.Reduce((r, k) => PairwiseTree.Reduce(pieces[r][k].First, pieces[r][k].First + pieces[r][k].Count, i => values[i], (a, b) => a + b), (a, b) => a + b);
                Assert.Equal(BitConverter.DoubleToInt64Bits(reference), BitConverter.DoubleToInt64Bits(sum));
            }
        }
    }

    [Fact]
    public void Blocks_are_as_even_as_the_counts_allow()
    {
        var blocks = new ReplicaBlocks(8, 3);

        Assert.Equal([(0, 2), (2, 3), (5, 3)], Enumerable.Range(0, 3).Select(blocks.BlockOf));
        Assert.Equal([(2, 2), (4, 1)], blocks.PiecesOf(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReplicaBlocks(8, 9));
    }

    [Fact]
    public void An_interleaved_pipeline_gets_blocks_of_whole_multiples_of_its_stages()
    {
        var blocks = new ReplicaBlocks(12, 5, unit: 2);

        Assert.Equal([(0, 2), (2, 2), (4, 2), (6, 2), (8, 4)], Enumerable.Range(0, 5).Select(blocks.BlockOf));
        Assert.Equal(4, blocks.Longest);
        // A power of two dividing the micro-batches but not the units is not an equal split.
        Assert.Equal([(0, 2), (2, 4)], Enumerable.Range(0, 2).Select(new ReplicaBlocks(6, 2, unit: 2).BlockOf));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReplicaBlocks(12, 7, unit: 2));
    }

    public static TheoryData<string, int, int, int, int, int, bool, int> Layouts => new()
    {
        // label, dp, pp, tp, ep, zero, MoE layers, micro-batches per step
        { "dp 3", 3, 1, 1, 1, 0, false, 8 },
        { "dp 5", 5, 1, 1, 1, 0, false, 8 },
        { "dp 6", 6, 1, 1, 1, 0, false, 8 },
        { "dp 7", 7, 1, 1, 1, 0, false, 8 },
        { "dp 3 zero 1", 3, 1, 1, 1, 1, false, 8 },
        { "dp 5 zero 2", 5, 1, 1, 1, 2, false, 8 },
        { "dp 3 zero 3", 3, 1, 1, 1, 3, false, 8 },
        { "dp 6 zero 3", 6, 1, 1, 1, 3, false, 8 },
        { "dp 3 tp 2", 3, 1, 2, 1, 0, false, 8 },
        { "dp 3 pp 2", 3, 2, 1, 1, 0, false, 8 },
        { "dp 3 pp 2 zero 2", 3, 2, 1, 1, 2, false, 8 },
        { "dp 3 pp 2 zero 3", 3, 2, 1, 1, 3, false, 8 },
        { "dp 3 moe", 3, 1, 1, 1, 0, true, 8 },
        { "dp 3 zero 3 moe", 3, 1, 1, 1, 3, true, 8 },
        // Expert groups of two replicas: blocks 1, 1 | 1, 1 | 2, 2 of 8, and 2, 2 | 2, 2 | 2, 2 of 12, whose groups' blocks
        // [0, 4), [4, 8), [8, 12) are two, three and two subtrees.
        { "dp 6 ep 2", 6, 1, 1, 2, 0, true, 8 },
        { "dp 6 ep 2 of 12", 6, 1, 1, 2, 0, true, 12 },
        { "dp 6 ep 2 zero 2 of 12", 6, 1, 1, 2, 2, true, 12 },
        { "dp 6 pp 2 ep 2", 6, 2, 1, 2, 1, true, 8 },
    };

    [Theory, MemberData(nameof(Layouts))]
    public async Task Uneven_replicas_end_with_the_one_device_digest_and_the_same_losses(string label, int dp, int pp, int tp, int ep, int zero, bool moe, int microBatches)
    {
        var spec = Spec(zero, tp, moe, pipeline: pp) with { Batch = new BatchSpec { Global = 2 * microBatches, Micro = 2 } };
        var reference = await TestSpecs.OneDeviceSteps(spec);

        var ranks = await Train(spec, ParallelGrid.Of(dp, pp, tp, ep), EngineGrid.AllSteps, label);

        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.Digest, r.Digest);
            Assert.Equal(reference.Steps, r.Steps);
        });
    }

    [Fact]
    public async Task An_interleaved_pipeline_runs_uneven_blocks_of_whole_multiples_of_its_stages()
    {
        // Twelve micro-batches over dp 5 at pp 2: blocks of 2, 2, 2, 2 and 4, each a multiple of the interleaved schedule's stages.
        var spec = Spec(pipeline: 2, schedule: "interleaved", virtualStages: 2) with { Batch = new BatchSpec { Global = 24, Micro = 2 }, Steps = 2 };
        var reference = await TestSpecs.OneDeviceSteps(spec);

        var ranks = await Train(spec, ParallelGrid.Of(5, 2, 1), EngineGrid.AllSteps, "interleaved");

        Assert.All(ranks, r =>
        {
            Assert.Equal(reference.Digest, r.Digest);
            Assert.Equal(reference.Steps, r.Steps);
        });
    }

    [Theory]
    [InlineData(3, 5)]
    [InlineData(7, 2)]
    public async Task A_checkpoint_written_at_one_uneven_width_resumes_at_another_to_the_uninterrupted_digest(int savedDp, int resumedDp)
    {
        var spec = Spec(zero: 1, steps: 4);
        var reference = await TestSpecs.ReferenceDigest(spec);

        var (_, digests) = await EngineGrid.CheckpointAndResume(spec, ParallelGrid.Of(savedDp, 1, 1), spec, ParallelGrid.Of(resumedDp, 1, 1));

        Assert.All(digests, d => Assert.Equal(reference, d));
    }

    [Theory]
    [InlineData(2, 3, 1)]
    [InlineData(2, 6, 2)]
    [InlineData(4, 6, 2)]
    [InlineData(4, 8, 4)]
    [InlineData(8, 4, 4)]
    [InlineData(1, 7, 1)]
    public void Experts_spread_over_the_widest_power_of_two_that_divides_the_replicas(int ep, int dp, int ranks) =>
        Assert.Equal(ranks, SpecValidator.ExpertRanks(ep, dp));

    [Theory]
    [InlineData(1, "1f1b", 1, 0, new[] { 8, 4, 3, 2, 1 })]
    [InlineData(1, "1f1b", 1, 2, new[] { 8, 4, 3, 2, 1 })]
    [InlineData(1, "1f1b", 1, 3, new[] { 8, 4, 3, 2, 1 })]
    [InlineData(2, "1f1b", 1, 0, new[] { 8, 4, 3, 2, 1 })]
    [InlineData(2, "1f1b", 1, 3, new[] { 8, 4, 3, 2, 1 })]
    [InlineData(2, "interleaved", 1, 0, new[] { 4, 2, 1 })]
    [InlineData(1, "1f1b", 2, 0, new[] { 8, 4, 3, 2, 1 })]
    [InlineData(1, "1f1b", 2, 2, new[] { 8, 4, 3, 2, 1 })]
    public void The_widths_offered_are_those_that_shorten_a_step(int pipeline, string schedule, int expert, int zero, int[] widths)
    {
        var spec = TestSpecs.Tiny(global: 16, micro: 2) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4 },
            Devices = new DeviceSpec { Min = 1, Max = 8 * pipeline },
            Parallel = new ParallelSpec { Pipeline = pipeline, Schedule = schedule, Expert = expert, Zero = zero },
        };

        Assert.Equal(widths, SpecValidator.DataParallelWidths(spec));
    }

    // Four layers, tied embeddings and dropout, eight micro-batches of 2.
    private static TrainingSpec Spec(int zero = 0, int tensor = 1, bool moe = false, int steps = 3, int pipeline = 1, string schedule = "1f1b", int virtualStages = 1) =>
        TestSpecs.Tiny(steps: steps, global: 16, micro: 2, dropout: 0.1) with
        {
            Model = TestSpecs.Tiny().Model with { Layers = 4, Moe = moe ? new MoeSpec { Experts = 4, TopK = 2, Every = 2 } : null },
            Parallel = new ParallelSpec { Zero = zero, Tensor = tensor, Pipeline = pipeline, Schedule = schedule, VirtualStages = virtualStages },
        };

    private static async Task<T[]> Train<T>(TrainingSpec spec, ParallelGrid grid, Func<DataParallelTrainer, T> work, string name)
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        // Buckets of 16 KB: the tiny model's gradient is reduced in several during the backward (other layout tests send one).
        return await EngineGrid.Run(plane, spec, grid, sequenceParallel: true, (_, trainer) => work(trainer), name: $"uneven-{name.Replace(' ', '-')}", bucketBytes: 16 << 10);
    }
}
